"""``preannotate``: one step, from images to predictions in a Label Studio project."""

from __future__ import annotations

from prefect import flow

from flows.params import PreannotateParams
from flows.pipeline import run_pipeline
from flows.scaleout import project_lock
from prelabel.pipeline import collect_images
from prelabel.reports import RunSummary

__all__ = ["preannotate"]


@flow(name="preannotate", log_prints=False)
def preannotate(params: PreannotateParams) -> RunSummary:
    """Collect images, match them to tasks (or import them), run the model through the cache,
    convert, post idempotently, and report."""
    images = collect_images(params.input_dir, params.manifest)
    with project_lock(params.project_id):
        return run_pipeline(
            params, images, params.model, params.model_options, params.cache_dir, params.refresh
        )
