"""``export-shard``: one shard of a scaled-out export (GPU pool): its batches read, inferred
through the shared cache and exported, then its marker (counts, error rows, who ran it)."""

from __future__ import annotations

import os
import socket

from prefect import flow, get_run_logger

from flows.common import RunSizes, export_batches, prediction_cache
from flows.params import ExportShardParams
from flows.scaleout import shard_images
from prelabel.export.batches import BatchExport, ExportPlan
from prelabel.report.summary import ShardSummary

__all__ = ["export_shard"]


@flow(name="export-shard", log_prints=False)
def export_shard(params: ExportShardParams) -> ShardSummary:
    """Export the shard's batches, then leave its marker in the shared cache."""
    log = get_run_logger()
    cache = prediction_cache(params)
    plan = ExportPlan(
        params.batch_size,
        tuple(params.categories),
        params.label_map,
        params.with_images,
        params.keep_original_images,
    )
    max_pixels = RunSizes.of(params).max_pixels
    images = shard_images(params.images, params.images_ref, cache)
    total = BatchExport()
    for report in export_batches(params, plan, params.first_batch, images, cache, max_pixels):
        total.add(report)
    summary = ShardSummary(
        shard=params.shard,
        images=len(images),
        cached=total.cached,
        inferred=total.inferred,
        failed=len(total.errors),
        worker=os.environ.get("PRELABEL_WORKER_NAME") or socket.gethostname(),
        pid=os.getpid(),
    )
    marker = {
        "worker": summary.worker,
        "pid": summary.pid,
        "first_batch": params.first_batch,
        "images": summary.images,
        "cached": summary.cached,
        "inferred": summary.inferred,
        "written": dict(total.written),
        "skipped": dict(total.skipped),
        "unmatched": dict(total.unmatched),
        "errors": [[e.file, str(e.stage), e.error] for e in total.errors],
    }
    cache.put_marker(params.shard, marker)
    log.info(
        "shard %s on %s: %d images, %d failed", params.shard, summary.worker, summary.images, summary.failed
    )
    return summary
