"""``infer``: two-step mode, step 1: images -> raw prediction files (+ the cache)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.common import Inferred, RunSizes, infer_in_batches, opaque, prediction_cache
from flows.params import InferParams
from prelabel.core.errors import AllImagesFailedError
from prelabel.core.failures import ErrorRow, write_errors
from prelabel.predict.batches import InferResult, collect_images
from prelabel.report.summary import InferSummary
from tasks.inference import save_raw_files

__all__ = ["infer"]


@flow(name="infer", log_prints=False)
def infer(params: InferParams) -> InferSummary:
    """Run the model over a folder or manifest and save raw predictions for a later ``post-predictions``
    (``<out>/<image path relative to input_dir>.prelabel.json``)."""
    log = get_run_logger()
    images = collect_images(params.input_dir, params.manifest)
    out = Path(params.output_dir)
    summary = InferSummary(images=len(images), errors_csv=str(out / "errors.csv"))
    errors: list[ErrorRow] = []
    root = Path(params.input_dir) if params.input_dir else None  # a manifest's paths: mirrored whole

    def save(batch: Inferred) -> tuple[InferResult, int]:
        return batch.result, save_raw_files(out, opaque(batch.result), root)

    for result, written in infer_in_batches(
        params, images, prediction_cache(params), RunSizes.of(params), save
    ):
        summary.written += written
        summary.cached += result.cached
        summary.inferred += result.inferred
        errors += result.errors
    summary.failed = len(errors)
    write_errors(out / "errors.csv", errors)
    log.info(summary.line())
    if images and len(errors) == len(images):
        raise AllImagesFailedError(f"every one of the {len(images)} images failed; see {out / 'errors.csv'}")
    return summary
