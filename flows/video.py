"""The pipeline for video projects; it reads like the image one:

collect -> probe -> match (or import as video tasks) -> skip finished -> [shards of videos on GPU
workers] -> [track -> regions + post] per batch of videos -> report
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from flows.common import RunSizes, label_map, opaque
from flows.params import PreannotateParams
from flows.scaleout import run_shards
from prelabel.errors import AllImagesFailedError
from prelabel.pipeline import chunks, project_prompt
from prelabel.reports import RunSummary
from prelabel.settings import Settings
from prelabel.store.cache import PredictionCache, open_cache
from prelabel.tracking import task_fields
from prelabel.video.probe import upload_problem
from prelabel.video.regions import video_controls
from tasks.common import LabelStudioConnection
from tasks.inference import model_for
from tasks.labelstudio import load_project, match_images, show_predictions
from tasks.reporting import Progress, write_report
from tasks.video import post_tracks, probe_videos, track_batch

__all__ = ["VIDEO_BATCH", "run_video_pipeline"]

VIDEO_BATCH = 4
"""Videos per ``track-videos`` task run (a video is hundreds of frames or more)."""


def run_video_pipeline(
    params: PreannotateParams, settings: Settings, ls: LabelStudioConnection, videos: list[str], model: str,
    model_options: dict[str, Any], cache_dir: str | None, refresh: bool,
) -> RunSummary:  # fmt: skip
    """Run one video project through the pipeline; returns the summary (raises when every video failed)."""
    log = get_run_logger()
    sizes = RunSizes.of(params, settings)
    mapping = label_map(params)
    project = load_project(ls, params.project_id)
    _, labels = video_controls(project.config)
    model_options = project_prompt(model, model_options, labels, mapping)
    adapter = model_for(model, model_options)
    model_version = params.model_version or f"{model}-{adapter.signature().key[:8]}"
    cache_location = str(Path(cache_dir or settings.cache_dir).expanduser().resolve())
    if str(cache_dir or settings.cache_dir).startswith("s3://"):
        cache_location = str(cache_dir or settings.cache_dir)
    cache: PredictionCache = open_cache(cache_location, settings)

    found, errors = probe_videos(opaque(videos))
    readable = [uri for uri in videos if uri in found]
    video_key = project.config.video.data_key
    fields = {uri: task_fields(info) for uri, info in found.items()}
    matched = match_images(ls, project, opaque(readable), params.import_new, params.fuzzy, opaque(fields),
                           max_pixels=sizes.max_pixels, dry_run=params.dry_run, data_key=video_key,
                           check=upload_problem)  # fmt: skip
    errors += matched.errors
    todo = [
        uri for uri, task_id in matched.task_ids.items()
        if params.overwrite or model_version not in matched.versions.get(task_id, frozenset())
    ]  # fmt: skip
    summary = RunSummary(
        project_id=project.id, model_version=model_version, images=len(videos), matched=len(matched.task_ids),
        imported=matched.imported, skipped=len(matched.task_ids) - len(todo), dry_run=params.dry_run,
        unmatched_files=len(matched.match.unmatched_files),
        unmatched_tasks=len(matched.match.unmatched_tasks),
    )  # fmt: skip
    log.info("%d videos, %d matched, %d to do, %d already posted", len(videos), len(matched.task_ids),
             len(todo), summary.skipped)  # fmt: skip

    if params.shard_size and todo:
        run_shards(params, todo, model_options, adapter.signature(), cache, cache_location, sizes)

    task_data = _task_data(ls, project.id, [matched.task_ids[uri] for uri in todo])
    unmatched_labels: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    progress = Progress(len(todo), key=f"prelabel-project-{project.id}-progress", unit="videos")
    for batch in chunks(todo, VIDEO_BATCH):
        tracked = track_batch(
            opaque({uri: found[uri] for uri in batch}), model, model_options, cache, refresh
        )
        tasks = {
            uri: (matched.task_ids[uri], task_data.get(matched.task_ids[uri], {})) for uri in tracked.tracks
        }
        built, posted = post_tracks(
            ls, project, opaque(tracked.tracks), opaque(found), opaque(tasks), opaque(matched.versions),
            mapping, model_version, min_iou=params.keyframe_iou, overwrite=params.overwrite,
            dry_run=params.dry_run, chunk_size=sizes.post_chunk,
        )  # fmt: skip
        errors += tracked.errors + built.errors
        summary.cached += tracked.cached
        summary.inferred += tracked.inferred
        summary.posted += posted.created
        summary.replaced += posted.replaced
        summary.regions += built.regions
        counts["tracks"] += built.regions
        counts["keyframes"] += built.keyframes
        unmatched_labels.update(built.unmatched_labels)
        progress.advance(len(batch), posted.created)
        log.info("%d videos: %d tracks, %d keyframes, %d posted", len(batch), built.regions, built.keyframes,
                 posted.created)  # fmt: skip

    if params.show_predictions and not params.dry_run:
        show_predictions(ls, project.id, model_version)
    summary.failed = len(errors)
    summary.model_counts = dict(counts) or None
    summary.unmatched_labels = sum(unmatched_labels.values())
    out = Path(params.output_dir)
    summary = write_report(summary, out, Path(params.unmatched_csv), unmatched_labels, opaque(matched.match),
                           opaque(errors), [])  # fmt: skip
    if errors and len(todo) + summary.skipped - len(errors) <= 0:
        raise AllImagesFailedError(f"every one of the {len(errors)} videos failed; see {out / 'errors.csv'}")
    return summary


def _task_data(ls: LabelStudioConnection, project_id: int, task_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each task's data (its ``fps`` decides the frames Label Studio counts)."""
    with ls.client() as client:
        return {t.id: dict(t.data) for t in client.iter_tasks(project_id, ids=task_ids)}
