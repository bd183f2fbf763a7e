"""Raw model output stored by content: sha256 of the image bytes + the model signature.

The label map is applied after the cache, so changing it never re-runs a model. A local
directory by default, an S3 prefix in production (same interface); both write atomically
(temp file + rename; a single PUT), so a crash never leaves half an entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prelabel.core.atomic import atomic_write
from prelabel.core.errors import MaskError, PredictionFileError, SettingsError
from prelabel.records import Detections, ModelSignature, detections_from_raw, detections_to_raw
from prelabel.store.s3 import s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from prelabel.core.settings import Settings

__all__ = [
    "LocalCache",
    "PredictionCache",
    "S3Cache",
    "cache_key",
    "cache_location",
    "open_cache",
]


def cache_key(sha256: str, signature: ModelSignature) -> str:
    """``<model signature key>/<first two hex>/<image sha256>.json``."""
    return f"{signature.key}/{sha256[:2]}/{sha256}.json"


class PredictionCache(Protocol):
    """Where raw predictions live between runs."""

    def get(self, sha256: str, signature: ModelSignature) -> Detections | None: ...

    def put(self, sha256: str, signature: ModelSignature, detections: Detections) -> None: ...

    def get_marker(self, name: str) -> dict[str, Any] | None:
        """A small JSON record stored beside the predictions (a finished shard), or None."""
        ...

    def put_marker(self, name: str, data: dict[str, Any]) -> None: ...


def _encode(signature: ModelSignature, detections: Detections) -> bytes:
    body: dict[str, Any] = detections_to_raw(detections)
    body["model"] = {
        "model": signature.model,
        "revision": signature.revision,
        "params": dict(signature.params),
    }
    return json.dumps(body, default=str).encode()


class LocalCache:
    """A cache in a local directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def get(self, sha256: str, signature: ModelSignature) -> Detections | None:
        path = self.root / cache_key(sha256, signature)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # unreadable entry: treated as a miss and rewritten
        return _entry(data, str(path))

    def put(self, sha256: str, signature: ModelSignature, detections: Detections) -> None:
        self._write(self.root / cache_key(sha256, signature), _encode(signature, detections))

    def get_marker(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.root / "markers" / f"{name}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def put_marker(self, name: str, data: dict[str, Any]) -> None:
        self._write(self.root / "markers" / f"{name}.json", json.dumps(data).encode())

    @staticmethod
    def _write(path: Path, content: bytes) -> None:
        atomic_write(path, content)


class S3Cache:
    """A cache under an S3 prefix (AWS, MinIO or any S3-compatible store)."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")

    def _key(self, sha256: str, signature: ModelSignature) -> str:
        key = cache_key(sha256, signature)
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, sha256: str, signature: ModelSignature) -> Detections | None:
        key = self._key(sha256, signature)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        try:
            data = json.loads(answer["Body"].read())
        except ValueError:
            return None
        return _entry(data, f"s3://{self.bucket}/{key}")

    def put(self, sha256: str, signature: ModelSignature, detections: Detections) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(sha256, signature),
            Body=_encode(signature, detections),
            ContentType="application/json",
        )

    def _marker_key(self, name: str) -> str:
        return f"{self.prefix}/markers/{name}.json" if self.prefix else f"markers/{name}.json"

    def get_marker(self, name: str) -> dict[str, Any] | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._marker_key(name))
            data = json.loads(answer["Body"].read())
        except (self.client.exceptions.NoSuchKey, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def put_marker(self, name: str, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.client.put_object(Bucket=self.bucket, Key=self._marker_key(name), Body=body)


def _entry(data: Any, where: str) -> Detections | None:
    """A cached entry, or None (a miss, rewritten) when it is not a valid prediction."""
    try:
        return detections_from_raw(data, where)
    except (PredictionFileError, MaskError):
        return None


def cache_location(cache_dir: str | None, settings: Settings) -> str:
    """Where a run's cache is: ``cache_dir`` or the settings', an S3 URI as given, a folder made
    absolute (the shard runs on other workers must find the same one)."""
    location = str(cache_dir or settings.cache_dir)
    return location if location.startswith("s3://") else str(Path(location).expanduser().resolve())


def open_cache(location: str | Path, settings: Settings | None = None) -> PredictionCache:
    """A cache at a local path or an ``s3://bucket/prefix`` (credentials from settings)."""
    text = str(location)
    if not text.startswith("s3://"):
        return LocalCache(text)
    bucket, _, prefix = text[5:].partition("/")
    if not bucket:
        raise SettingsError(f"cache location {text!r} names no bucket: use s3://bucket/prefix")
    return S3Cache(s3_client(settings), bucket, prefix)
