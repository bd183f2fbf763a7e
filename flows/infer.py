"""``infer``: two-step mode, step 1: images -> raw prediction files (+ the cache)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import infer_in_batches, opaque, prediction_cache
from flows.params import InferParams
from prelabel.errors import PrelabelError
from prelabel.failures import ErrorRow, write_errors
from prelabel.pipeline import InferResult, collect_images
from prelabel.records import save_raw_file
from prelabel.store.uris import name_of

__all__ = ["infer"]


@task(name="save-raw-files", cache_policy=NO_CACHE)
def save_raw_files(out: Path, result: InferResult) -> int:
    """One DINO-X-shaped file per image: ``<image stem>_dinox_preannot.json``."""
    for record in result.records:
        save_raw_file(out / f"{Path(name_of(record.uri)).stem}_dinox_preannot.json", record.detections)
    return len(result.records)


@flow(name="infer", log_prints=False)
def infer(params: InferParams) -> dict[str, int]:
    """Run the model over a folder or manifest and save raw predictions for a later ``post-predictions``."""
    log = get_run_logger()
    images = collect_images(params.input_dir, params.manifest)
    out = Path(params.out)
    counts = {"images": len(images), "written": 0, "cached": 0, "inferred": 0, "failed": 0}
    errors: list[ErrorRow] = []
    for result in infer_in_batches(params, images, params.batch_size, prediction_cache(params)):
        counts["written"] += save_raw_files(out, opaque(result))
        counts["cached"] += result.cached
        counts["inferred"] += result.inferred
        errors += result.errors
    counts["failed"] = len(errors)
    write_errors(out / "errors.csv", errors)
    log.info("%(images)d images: %(written)d raw files, %(cached)d from cache, %(inferred)d inferred, "
             "%(failed)d failed", counts)  # fmt: skip
    if images and len(errors) == len(images):
        raise PrelabelError(f"every one of the {len(images)} images failed; see {out / 'errors.csv'}")
    return counts
