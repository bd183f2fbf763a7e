"""``infer-shard``: the GPU part of a scaled-out run: one shard's images into the shared cache."""

from __future__ import annotations

import os
import socket
from typing import Any

from prefect import flow, get_run_logger

from flows.common import infer_in_batches, prediction_cache
from flows.params import ShardParams
from prelabel.errors import PrelabelError

__all__ = ["infer_shard"]


@flow(name="infer-shard", log_prints=False)
def infer_shard(params: ShardParams) -> dict[str, Any]:
    """Infer the shard through the cache, then leave its marker (who ran it, the counts)."""
    log = get_run_logger()
    cache = prediction_cache(params)
    counts = {"images": len(params.images), "cached": 0, "inferred": 0, "failed": 0}
    for result in infer_in_batches(params, params.images, params.batch_size, cache):
        counts["cached"] += result.cached
        counts["inferred"] += result.inferred
        counts["failed"] += len(result.errors)
    if params.images and counts["failed"] == len(params.images):
        raise PrelabelError(f"shard {params.shard}: every one of its {len(params.images)} images failed")
    worker = os.environ.get("PRELABEL_WORKER_NAME") or socket.gethostname()
    marker = {**counts, "worker": worker, "pid": os.getpid()}
    cache.put_marker(params.shard, marker)
    log.info("shard %s on %s: %s", params.shard, worker, counts)
    return marker
