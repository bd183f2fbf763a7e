"""The review page's images: read by the server for many requests at once, never a closed client.

Each image request runs in a thread of its own. They share one ``Fetcher`` and, for the files
Label Studio serves, one Label Studio client made at start and closed only when the page's
server stops: an httpx client may be used from many threads, and closing a shared one under
another request is what turned overlapping image requests into 500s. At most ``concurrency``
reads run at once and the rest wait their turn (up to ``wait`` seconds), so a burst of pages
never floods Label Studio. Nothing here logs or returns the key.
"""

from __future__ import annotations

import io
import threading

from prelabel.core.errors import SourceError
from prelabel.core.redact import redact
from prelabel.core.settings import Settings
from prelabel.ingest.fetch import Fetcher, FetchOptions
from prelabel.labelstudio.client import LabelStudioClient

__all__ = ["ImageSource", "media_type"]


class ImageSource:
    """Image bytes by a review item's reference (a path, ``s3://``, URL or Label Studio ``/data/...``)."""

    def __init__(
        self, settings: Settings | None, concurrency: int = 8, timeout: float = 30.0, wait: float = 60.0
    ) -> None:
        self.settings, self.wait = settings, wait
        key = settings.ls_api_key if settings is not None else None
        self._client = (
            LabelStudioClient(settings.ls_url, key, timeout=timeout, retries=2)
            if settings is not None and key is not None and key.get_secret_value()
            else None
        )
        options = FetchOptions(concurrency=1, timeout=timeout, retries=2)
        self._fetcher = Fetcher(settings, options, label_studio=self._client)
        self._slots = threading.BoundedSemaphore(max(1, concurrency))

    def uri(self, image: str) -> str:
        """Where an item's image is read from: Label Studio's ``/data/...`` under its URL."""
        if image.startswith("/data/") and self.settings is not None:
            return self.settings.ls_url.rstrip("/") + image
        return image

    def read(self, image: str) -> tuple[bytes, str]:
        """The image's bytes and media type; a ``SourceError`` (redacted) when it cannot be had."""
        uri = self.uri(image)
        if not self._slots.acquire(timeout=self.wait):
            raise SourceError(f"{redact(uri)}: the server is busy reading other images; try again")
        try:
            data = self._fetcher.fetch_all([uri])[uri]
        finally:
            self._slots.release()
        if isinstance(data, SourceError):
            raise SourceError(redact(str(data))) from data
        kind = media_type(data)
        if kind is None:
            raise SourceError(f"{redact(uri)}: not an image a browser can show")
        return data, kind

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def media_type(data: bytes) -> str | None:
    """The image's MIME type from its header (None: not an image Pillow knows)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            return Image.MIME.get(opened.format or "")
    except (UnidentifiedImageError, OSError):
        return None
