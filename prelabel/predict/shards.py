"""Shards: the unit of work spread over GPU workers, named by content so reruns can skip them.

A shard is a slice of the images still to do; its key is a digest of the model signature
and the shard's image URIs, so the same work under the same model has the same key on a
rerun. A finished shard leaves a marker in the shared prediction cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from prelabel.records import ModelSignature

__all__ = ["shard_key", "split_shards"]


def split_shards(images: Sequence[str], shard_size: int) -> list[list[str]]:
    """Consecutive shards of at most ``shard_size`` images (sorted, so reruns cut alike)."""
    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1, got {shard_size}")
    ordered = sorted(images)
    return [ordered[i : i + shard_size] for i in range(0, len(ordered), shard_size)]


def shard_key(images: Sequence[str], signature: ModelSignature) -> str:
    """A stable name for this work: model signature + the shard's images."""
    digest = hashlib.sha256(signature.key.encode())
    for uri in images:
        digest.update(b"\0" + uri.encode())
    return f"shard-{digest.hexdigest()[:24]}"
