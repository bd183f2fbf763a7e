"""``export``: images -> model (through the cache) -> pseudo-labels in S3 or a folder.

In this flow run, batch by batch; or with ``shard_size`` as runs of the ``export-shard``
deployment on the GPU pool (``flows.scaleout.run_shard_runs``: markers, retries, rerun
skips), which write exactly the objects this flow run would write.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import RunSizes, export_batches, opaque
from flows.params import ExportParams, ExportShardParams
from flows.scaleout import run_shard_runs
from prelabel.core.errors import PrelabelError
from prelabel.core.failures import ErrorRow, Stage
from prelabel.core.settings import load_settings
from prelabel.export.batches import BatchExport, ExportPlan, batch_shards, export_shard_key
from prelabel.predict.batches import collect_images
from prelabel.report.summary import ExportSummary
from prelabel.store.cache import PredictionCache, cache_location, open_cache
from tasks.exporting import read_export_keys, write_export_report
from tasks.inference import model_for
from tasks.reporting import Progress

__all__ = ["export"]


@flow(name="export", log_prints=False)
def export(params: ExportParams) -> ExportSummary:
    """Write COCO JSON per batch, a PNG per mask and optionally the images; skip what is there."""
    log = get_run_logger()
    images = collect_images(params.input_dir, params.manifest)
    sizes = RunSizes.of(params)
    plan = ExportPlan.resolve(
        sizes.task_batch,
        params.categories,
        params.model_options,
        params.label_map,
        params.with_images,
        params.keep_original_images,
    )
    settings = load_settings()
    location = cache_location(params.cache_dir, settings)
    cache = open_cache(location, settings)
    if params.shard_size:
        total, shards = _run_sharded(
            params, params.shard_size, plan, images, cache, location, sizes.max_pixels
        )
        total.keys = read_export_keys(params.to, plan.batch_numbers(len(images)))
    else:
        total, shards = BatchExport(), 0
        progress = Progress(len(images), "prelabel-export-progress")
        batches = export_batches(params, plan, 1, images, cache, sizes.max_pixels)
        for number, (report, size) in enumerate(zip(batches, plan.batch_sizes(len(images)), strict=True), 1):
            total.add(report)
            progress.advance(size)
            log.info("batch %d: %s", number, report.line())
    keys = write_export_report(Path(params.output_dir), opaque(total.errors), opaque(total.keys))
    summary = ExportSummary.of(params.to, len(images), total, str(keys), shards)
    create_markdown_artifact(summary.markdown(), key="prelabel-export", description="prelabel export")
    return summary


def _run_sharded(
    params: ExportParams,
    shard_size: int,
    plan: ExportPlan,
    images: list[str],
    cache: PredictionCache,
    cache_location: str,
    max_pixels: int,
) -> tuple[BatchExport, int]:
    """The shards as runs of ``export_deployment``; the counts from their markers (shards done
    by an earlier run count as already there)."""
    if not plan.categories:
        raise PrelabelError(
            "a sharded export needs its categories up front: give categories (or the "
            "model's classes option) so every worker numbers them alike"
        )
    signature = model_for(params.model, params.model_options).signature()
    jobs = []
    for first_batch, start, end in batch_shards(len(images), plan.batch_size, shard_size):
        shard = images[start:end]
        key = export_shard_key(plan, signature, params.to, first_batch, shard)
        child = ExportShardParams(
            images=shard,
            first_batch=first_batch,
            batch_size=plan.batch_size,
            shard=key,
            to=params.to,
            with_images=plan.with_images,
            keep_original_images=plan.keep_original_images,
            label_map=dict(plan.label_map),
            categories=list(plan.categories),
            model=params.model,
            model_options=params.model_options,
            cache_dir=cache_location,
            refresh=params.refresh,
            max_image_pixels=max_pixels,
        )
        jobs.append((key, child.model_dump()))
    ran = set(
        run_shard_runs(
            params.export_deployment, jobs, cache, params.max_parallel_shards, params.shard_retries
        )
    )
    total = BatchExport()
    for key, _ in jobs:
        marker = cache.get_marker(key) or {}
        written, skipped = Counter(marker.get("written", {})), Counter(marker.get("skipped", {}))
        if key not in ran:
            skipped, written = skipped + written, Counter()
        errors = [ErrorRow(f, Stage(s), e) for f, s, e in marker.get("errors", [])]
        unmatched = Counter(marker.get("unmatched", {}))
        total.add(BatchExport(written=written, skipped=skipped, unmatched=unmatched, errors=errors))
    return total, len(jobs)
