"""``infer-shard``: the GPU part of a scaled-out run: one shard's images into the shared cache."""

from __future__ import annotations

import dataclasses
import os
import socket

from prefect import flow, get_run_logger

from flows.common import RunSizes, infer_in_batches, prediction_cache
from flows.params import ShardParams
from flows.scaleout import shard_images
from prelabel.core.errors import PrelabelError
from prelabel.predict.models.video import tracks_videos
from prelabel.report.summary import ShardSummary
from tasks.video import probe_videos, track_batch

__all__ = ["infer_shard"]


@flow(name="infer-shard", log_prints=False)
def infer_shard(params: ShardParams) -> ShardSummary:
    """Infer the shard through the cache, then leave its marker (who ran it, the counts)."""
    log = get_run_logger()
    cache = prediction_cache(params)
    images = shard_images(params.images, params.images_ref, cache)
    summary = ShardSummary(shard=params.shard, images=len(images))
    if tracks_videos(params.model):  # a shard of whole videos
        found, errors = probe_videos(images)
        tracked = track_batch(found, params.model, params.model_options, cache, params.refresh)
        summary.cached, summary.inferred = tracked.cached, tracked.inferred
        summary.failed = len(errors) + len(tracked.errors)
    else:
        for result in infer_in_batches(
            params, images, cache, RunSizes.of(params), lambda batch: batch.result
        ):
            summary.cached += result.cached
            summary.inferred += result.inferred
            summary.failed += len(result.errors)
    if images and summary.failed == len(images):
        raise PrelabelError(f"shard {params.shard}: every one of its {len(images)} images failed")
    summary.worker = os.environ.get("PRELABEL_WORKER_NAME") or socket.gethostname()
    summary.pid = os.getpid()
    marker = {k: v for k, v in dataclasses.asdict(summary).items() if k != "shard"}
    cache.put_marker(params.shard, marker)
    log.info("shard %s on %s: %s", params.shard, summary.worker, marker)
    return summary
