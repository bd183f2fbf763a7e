"""Where a Label Studio task's image is: its reference as a URI the fetcher reads.

Label Studio keeps uploads and local files as paths of its own (``/data/upload/3/ab12cd34-x.jpg``,
``/data/local-files/?d=...``); these become URLs of the configured server, which the fetcher
reads with its key (``prelabel.ingest.guards``). Cloud-storage keys (``s3://``) and other URLs
stay as they are.

A reference that came over the network (a request to the ML backend) is held to more: only the
configured server's files and ``s3://`` keys are read. A URL on another host, a local path or
another scheme is refused, not fetched: a backend that read whatever a request names would let
anyone who reaches it make it read the machine's disk and its private network. The key is never
sent to another host either way.
"""

from __future__ import annotations

from prelabel.core.errors import UntrustedSourceError
from prelabel.core.redact import safe_url
from prelabel.ingest.guards import LABEL_STUDIO_FILE_PATHS, label_studio_file_path

__all__ = ["label_studio_upload", "task_image_uri", "trusted_task_image_uri"]


def task_image_uri(ref: str, ls_url: str) -> str:
    """``ref`` (a task's image) as a URI: Label Studio's own file paths as URLs of ``ls_url``."""
    if ref.startswith(LABEL_STUDIO_FILE_PATHS):
        return ls_url.rstrip("/") + ref
    return ref


def trusted_task_image_uri(ref: str, ls_url: str) -> str:
    """``task_image_uri(ref)`` when it is a file of the Label Studio at ``ls_url`` or an ``s3://``
    key; ``UntrustedSourceError`` (naming the host, never the query) otherwise."""
    uri = task_image_uri(ref, ls_url)
    if uri.startswith("s3://") or label_studio_file_path(uri, ls_url) is not None:
        return uri
    if uri.startswith(("http://", "https://")):
        raise UntrustedSourceError(
            f"image {safe_url(uri)} is not a file of the configured Label Studio ({ls_url}): "
            "prelabel serve reads only that server's uploads and local files, and s3:// keys"
        )
    raise UntrustedSourceError(
        f"image reference {ref[:80]!r} is neither a Label Studio file nor an s3:// key: not read"
    )


def label_studio_upload(uri: str, ls_url: str) -> bool:
    """Whether ``uri`` is a file uploaded to the Label Studio at ``ls_url`` (``/data/upload/``):
    one that never changes, since Label Studio gives every upload a name of its own."""
    path = label_studio_file_path(uri, ls_url)
    return path is not None and path.startswith("/data/upload/")
