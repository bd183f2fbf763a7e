"""``preannotate``: one step, from images to predictions in a Label Studio project."""

from __future__ import annotations

from prefect import flow

from flows.common import connection
from flows.lock import project_lock
from flows.params import PreannotateParams
from flows.pipeline import run_pipeline
from prelabel.pipeline import collect_images
from prelabel.reports import RunSummary

__all__ = ["preannotate"]


@flow(name="preannotate", log_prints=False)
def preannotate(params: PreannotateParams) -> RunSummary:
    """Collect images, match them to tasks (or import them; or read the tasks ``task_ids``
    names), run the model through the cache, convert, post idempotently, and report."""
    images = [] if params.task_ids else collect_images(params.input_dir, params.manifest)
    settings, ls = connection(params)
    with project_lock(ls.url, params.project_id, params.wait_seconds):
        return run_pipeline(
            params, settings, ls, images, params.model, params.model_options, params.cache_dir, params.refresh
        )
