"""URI helpers every stage shares: a file's name in any URI, an ``s3://`` URI's parts."""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from prelabel.core.errors import SourceError

__all__ = ["name_of", "split_s3_uri"]


def name_of(uri: str) -> str:
    """The file name in a path, ``s3://`` key or URL (URL-decoded, query left out)."""
    try:
        path = urlsplit(uri).path if "://" in uri else uri
    except ValueError:  # a malformed URL (an unclosed IPv6 bracket): its last segment, no query
        path = uri.split("?", 1)[0].split("#", 1)[0]
    return PurePosixPath(unquote(path)).name or uri


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); anything else is a SourceError."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise SourceError(f"{uri}: not an s3://bucket/key URI")
    return bucket, key
