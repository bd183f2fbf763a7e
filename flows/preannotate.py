"""``preannotate``: one step, from images to predictions in a Label Studio project."""

from __future__ import annotations

from prefect import flow

from flows.common import connection
from flows.lock import project_lock
from flows.params import PreannotateParams
from flows.pipeline import run_pipeline
from flows.video import run_video_pipeline
from prelabel.predict.batches import collect_images
from prelabel.predict.models.video import tracks_videos
from prelabel.predict.videos import collect_videos
from prelabel.report.summary import RunSummary

__all__ = ["preannotate"]


@flow(name="preannotate", log_prints=False)
def preannotate(params: PreannotateParams) -> RunSummary:
    """Collect images, match them to tasks (or import them; or read the tasks ``task_ids`` names),
    run the model through the cache, convert, post idempotently, and report. A video model works on
    the videos of a video project."""
    video = tracks_videos(params.model)
    if params.task_ids and not video:  # the tasks' own images: read with the tasks
        images: list[str] = []
    else:
        images = (collect_videos if video else collect_images)(params.input_dir, params.manifest)
    settings, ls = connection(params)
    with project_lock(ls.url, params.project_id, params.wait_seconds):
        if video:
            return run_video_pipeline(
                params,
                settings,
                ls,
                images,
                params.model,
                params.model_options,
                params.cache_dir,
                params.refresh,
            )
        return run_pipeline(
            params,
            settings,
            ls,
            images,
            params.model,
            params.model_options,
            params.cache_dir,
            params.refresh,
            manifest=params.manifest,
            task_ids=params.task_ids,
            verifier=params.verifier,
            min_verified=params.min_verified,
            scale_out=params if params.shard_size else None,
        )
