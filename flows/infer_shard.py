"""``infer-shard``: the GPU part of a scaled-out run: one shard's images into the shared cache."""

from __future__ import annotations

import os
import socket
from typing import Any

from prefect import flow, get_run_logger

from flows.common import opaque
from flows.params import ShardParams
from prelabel.cache import open_cache
from prelabel.errors import PrelabelError
from prelabel.pipeline import chunks
from prelabel.settings import load_settings
from tasks.inference import infer_batch

__all__ = ["infer_shard"]


@flow(name="infer-shard", log_prints=False)
def infer_shard(params: ShardParams) -> dict[str, Any]:
    """Infer the shard through the cache, then leave its marker (who ran it, the counts)."""
    log = get_run_logger()
    settings = load_settings()
    cache = open_cache(params.cache_dir or settings.cache_dir, settings)
    counts = {"images": len(params.images), "cached": 0, "inferred": 0, "failed": 0}
    for batch in chunks(params.images, params.batch_size):
        result = infer_batch(opaque(batch), params.model, params.model_options, cache, params.refresh,
                             params.max_image_pixels)  # fmt: skip
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
