"""The pipeline for video projects; it reads like the image one:

collect -> probe -> match (or import as video tasks) -> skip finished -> [shards of videos on GPU
workers] -> [track -> regions + post] per batch of videos -> report
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from flows.common import RunSizes, label_map, opaque
from flows.params import PreannotateParams
from flows.scaleout import run_shards
from prelabel.core.settings import Settings
from prelabel.labelstudio.client import Project
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.posting import PostReport
from prelabel.predict.batches import chunks, project_prompt, run_cache, run_version, still_to_do
from prelabel.predict.videos import TrackedBatch, VideoPredictions, task_fields
from prelabel.report.summary import RunSummary
from prelabel.report.tally import RunTally, start_line, start_summary
from prelabel.store.cache import PredictionCache
from prelabel.video.probe import VideoInfo, upload_problem
from prelabel.video.regions import video_controls
from tasks.common import LabelStudioConnection
from tasks.inference import model_for
from tasks.labelstudio import MatchOutcome, load_project, match_images, show_predictions
from tasks.reporting import Progress, write_report
from tasks.video import post_tracks, probe_videos, track_batch

__all__ = ["VIDEO_BATCH", "run_video_pipeline"]

VIDEO_BATCH = 4
"""Videos per ``track-videos`` task run (a video is hundreds of frames or more)."""


@dataclass(frozen=True)
class _VideoRun:
    """What every batch of a video run shares once the project and the model are known."""

    params: PreannotateParams
    ls: LabelStudioConnection
    project: Project
    mapping: LabelMap
    model: str
    model_options: dict[str, Any]
    model_version: str
    sizes: RunSizes


def run_video_pipeline(
    params: PreannotateParams,
    settings: Settings,
    ls: LabelStudioConnection,
    videos: list[str],
    model: str,
    model_options: dict[str, Any],
    cache_dir: str | None,
    refresh: bool,
) -> RunSummary:
    """Run one video project through the pipeline; returns the summary (raises when every video failed)."""
    log = get_run_logger()
    run = _prepare(params, settings, ls, model, model_options)
    cache, cache_location = run_cache(model, cache_dir, settings)
    found, unreadable = probe_videos(opaque(videos))
    matched = _match(params, ls, run.project, videos, found, run.sizes)
    todo = still_to_do(matched.task_ids, matched.versions, run.model_version, params.overwrite)
    summary = start_summary(run.project.id, run.model_version, len(videos), todo, matched, params.dry_run)
    log.info("%s", start_line(summary, len(todo), "videos"))
    if params.shard_size and todo and cache is not None:
        signature = model_for(model, run.model_options).signature()
        run_shards(params, todo, run.model_options, signature, cache, cache_location, run.sizes)
    tally = RunTally(earlier_errors=unreadable + matched.errors)
    for batch in _post_batches(run, cache, refresh, found, matched, todo):
        log.info("%s", tally.add_videos(*batch))
    if params.show_predictions and not params.dry_run:
        show_predictions(ls, run.project.id, run.model_version)
    out = Path(params.output_dir)
    summary = tally.fill(summary, verifier=False, exemplars=False)
    unmatched, errors = Path(params.unmatched_csv), opaque(tally.all_errors)
    summary = write_report(summary, out, unmatched, tally.unmatched_labels, opaque(matched.match), errors, [])
    tally.check_some_fine(summary, len(todo), str(out / "errors.csv"))
    return summary


def _prepare(
    params: PreannotateParams,
    settings: Settings,
    ls: LabelStudioConnection,
    model: str,
    model_options: dict[str, Any],
) -> _VideoRun:
    """The project, the model's prompt from its labels (through the label map), the model version."""
    mapping = label_map(params)
    project = load_project(ls, params.project_id)
    model_options = project_prompt(model, model_options, video_controls(project.config)[1], mapping)
    signature = model_for(model, model_options).signature()
    model_version = run_version(params.model_version, model, signature, None)
    sizes = RunSizes.of(params, settings)
    return _VideoRun(params, ls, project, mapping, model, model_options, model_version, sizes)


def _match(
    params: PreannotateParams,
    ls: LabelStudioConnection,
    project: Project,
    videos: list[str],
    found: dict[str, VideoInfo],
    sizes: RunSizes,
) -> MatchOutcome:
    """The readable videos paired with the project's video tasks by name (new ones imported as
    video tasks with their frame rate and size when asked)."""
    readable = [uri for uri in videos if uri in found]
    fields = {uri: task_fields(info) for uri, info in found.items()}
    return match_images(
        ls,
        project,
        opaque(readable),
        params.import_new,
        params.fuzzy,
        opaque(fields),
        max_pixels=sizes.max_pixels,
        dry_run=params.dry_run,
        data_key=project.config.video.data_key,
        check=upload_problem,
    )


def _post_batches(
    run: _VideoRun,
    cache: PredictionCache | None,
    refresh: bool,
    found: dict[str, VideoInfo],
    matched: MatchOutcome,
    todo: list[str],
) -> Iterator[tuple[TrackedBatch, VideoPredictions, PostReport]]:
    """Track, build and post ``todo`` a few videos at a time; yields each batch's outcome."""
    params, ls, project = run.params, run.ls, run.project
    task_data = _task_data(ls, project.id, [matched.task_ids[uri] for uri in todo])
    progress = Progress(len(todo), key=f"prelabel-project-{project.id}-progress", unit="videos")
    for batch in chunks(todo, VIDEO_BATCH):
        chosen = {uri: found[uri] for uri in batch}
        tracked = track_batch(opaque(chosen), run.model, run.model_options, cache, refresh)
        ids = {uri: matched.task_ids[uri] for uri in tracked.tracks}
        tasks = {uri: (task_id, task_data.get(task_id, {})) for uri, task_id in ids.items()}
        built, posted = post_tracks(
            ls,
            project,
            opaque(tracked.tracks),
            opaque(found),
            opaque(tasks),
            opaque(matched.versions),
            run.mapping,
            run.model_version,
            min_iou=params.keyframe_iou,
            overwrite=params.overwrite,
            dry_run=params.dry_run,
            chunk_size=run.sizes.post_chunk,
        )
        progress.advance(len(batch), posted.created)
        yield tracked, built, posted


def _task_data(ls: LabelStudioConnection, project_id: int, task_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each task's data (its ``fps`` decides the frames Label Studio counts)."""
    with ls.client() as client:
        return {t.id: dict(t.data) for t in client.iter_tasks(project_id, ids=task_ids)}
