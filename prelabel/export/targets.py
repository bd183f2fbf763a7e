"""Export targets: ``s3://bucket/prefix`` or a local folder, and the per-batch key index.

A target is never listed or hashed whole. Each batch of an export leaves
``index/batch_NNNNN.json`` (every key it wrote or found, with MD5 and size) after its
objects, and ``index/batch_NNNNN.started`` before them. Resuming a batch therefore costs
one read: an index says what is there (a folder also checks each file's size; S3 trusts the
index); a batch that started but left no index (a crash) checks only its own keys (S3
``HEAD`` ETags, a folder hashes those files); a batch that never started writes blindly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prelabel.core.atomic import atomic_write
from prelabel.core.errors import SourceError
from prelabel.core.paths import within
from prelabel.store.uris import split_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from prelabel.core.settings import Settings

__all__ = [
    "BatchIndex",
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "index_key",
    "open_store",
    "read_index",
    "started_key",
]


class ObjectStore(Protocol):
    """Where exported objects go."""

    location: str

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write one object whole."""

    def get(self, key: str) -> bytes | None:
        """One object's bytes, or None when absent."""

    def md5(self, key: str) -> str | None:
        """MD5 hex of one object's content (S3: its ETag), or None when absent."""

    def holds(self, key: str, size: int) -> bool:
        """Whether an indexed object is still there (a folder checks the size; S3 trusts the index)."""


class LocalStore:
    """A folder; objects are written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        atomic_write(within(self.root, self.root / key), data)

    def get(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def md5(self, key: str) -> str | None:
        data = self.get(key)
        return None if data is None else hashlib.md5(data).hexdigest()  # noqa: S324

    def holds(self, key: str, size: int) -> bool:
        try:
            return (self.root / key).stat().st_size == size
        except OSError:
            return False


class S3Store:
    """``s3://bucket/prefix`` through boto3 (endpoint and keys from the settings)."""

    def __init__(self, uri: str, settings: Settings | None = None, client: S3Client | None = None) -> None:
        from prelabel.store.s3 import s3_client

        self.bucket, prefix = split_s3_uri(uri)
        self.prefix = prefix.strip("/")
        self.client = client or s3_client(settings)
        self.location = uri

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                return None
            raise SourceError(f"{self.location}: cannot read {key} ({exc})") from exc

    def md5(self, key: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ETag"].strip('"')
        except ClientError as exc:
            if _missing(exc):
                return None
            raise SourceError(f"{self.location}: cannot read {key} ({exc})") from exc

    def holds(self, key: str, size: int) -> bool:
        return True


def _missing(exc: Any) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in {"404", "NoSuchKey", "NotFound"}


def open_store(target: str, settings: Settings | None = None) -> ObjectStore:
    """An S3 store for ``s3://...``, else a local folder."""
    return S3Store(target, settings) if target.startswith("s3://") else LocalStore(target)


@dataclass(frozen=True)
class BatchIndex:
    """What one batch wrote or found: key -> (MD5 hex, size in bytes), by kind."""

    objects: Mapping[str, tuple[str, int]]
    kinds: Mapping[str, str]

    def to_bytes(self) -> bytes:
        body = {
            key: {"md5": md5, "size": size, "kind": self.kinds[key]}
            for key, (md5, size) in sorted(self.objects.items())
        }
        return json.dumps({"objects": body}, sort_keys=True).encode()


def index_key(number: int) -> str:
    return f"index/batch_{number:05d}.json"


def started_key(number: int) -> str:
    return f"index/batch_{number:05d}.started"


def read_index(store: ObjectStore, number: int) -> BatchIndex | None:
    """A finished batch's index, or None (never finished, or unreadable: then checked again)."""
    data = store.get(index_key(number))
    if data is None:
        return None
    try:
        body = json.loads(data)["objects"]
        objects = {k: (str(v["md5"]), int(v["size"])) for k, v in body.items()}
        kinds = {k: str(v["kind"]) for k, v in body.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return BatchIndex(objects, kinds)
