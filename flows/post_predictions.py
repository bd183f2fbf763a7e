"""``post-predictions``: two-step mode, step 2: raw prediction files -> Label Studio."""

from __future__ import annotations

from prefect import flow

from flows.common import connection
from flows.lock import project_lock
from flows.params import PostParams
from flows.pipeline import run_pipeline
from prelabel.predict.batches import collect_images
from prelabel.report.summary import RunSummary

__all__ = ["post_predictions"]


@flow(name="post-predictions", log_prints=False)
def post_predictions(params: PostParams) -> RunSummary:
    """Pair images with raw files (``<name>.prelabel.json`` as ``infer`` writes them, or the DINO-X
    scripts' ``<stem>_dinox_preannot.json`` / ``<stem>.json``), convert, match, post, report."""
    options = {"raw_dir": params.raw_dir, "input_root": params.input_dir}
    images = collect_images(params.input_dir, None)
    settings, ls = connection(params)
    with project_lock(ls.url, params.project_id, params.wait_seconds):
        return run_pipeline(params, settings, ls, images, "raw-files", options, None, False)
