"""``infer``: two-step mode, step 1: images -> raw prediction files (+ the cache)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import opaque
from flows.params import InferParams
from prelabel.cache import open_cache
from prelabel.errors import PrelabelError
from prelabel.pipeline import InferResult, chunks, collect_images
from prelabel.records import save_raw_file
from prelabel.reports import ErrorRow, write_errors
from prelabel.settings import load_settings
from prelabel.sources import name_of
from tasks.inference import infer_batch

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
    settings = load_settings()
    cache = open_cache(params.cache_dir or settings.cache_dir, settings)
    images = collect_images(params.input_dir, params.manifest)
    out = Path(params.out)
    counts = {"images": len(images), "written": 0, "cached": 0, "inferred": 0, "failed": 0}
    errors: list[ErrorRow] = []
    for batch in chunks(images, params.batch_size):
        result = infer_batch(opaque(batch), params.model, params.model_options, cache, params.refresh,
                             params.max_image_pixels)  # fmt: skip
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
