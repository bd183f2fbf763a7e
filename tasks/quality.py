"""Tasks of the quality report: measure a model version against the annotations (regions on
images, tracks on videos), then write the files and the artifacts that point at them."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prelabel.core.failures import ErrorRow
from prelabel.quality import Pairs, QualityReport, QualitySummary, load_pairs, measure_quality, write_quality
from prelabel.quality.tracks import TrackQuality, load_track_pairs, measure_tracks, write_track_quality
from tasks.common import RETRY, LabelStudioConnection
from tasks.reporting import Progress

__all__ = ["measure", "measure_videos", "write_quality_report", "write_track_report"]


@task(name="measure-quality", cache_policy=NO_CACHE, **RETRY)
def measure(
    connection: LabelStudioConnection,
    project_id: int,
    model_version: str | None,
    iou_threshold: float,
    keypoint_tolerance: float,
) -> tuple[QualityReport, Pairs]:
    """Read the project's predicted and annotated tasks and compute every number (None: the
    project's model version)."""
    progress = Progress(0, f"prelabel-quality-project-{project_id}-progress", unit="tasks read")
    with connection.client() as client:
        project, pairs = load_pairs(client, project_id, model_version, progress=progress.advance)
    return measure_quality(pairs, project.config, project_id, iou_threshold, keypoint_tolerance), pairs


@task(name="write-quality-report", cache_policy=NO_CACHE)
def write_quality_report(out_dir: Path, report: QualityReport, pairs: Pairs) -> QualitySummary:
    """The CSV, JSON and PNG files, then a markdown and a table artifact."""
    summary = write_quality(out_dir, report, pairs)
    key = f"prelabel-quality-project-{summary.project_id}"
    create_markdown_artifact(markdown=summary.markdown(), key=key, description="model vs people")
    create_table_artifact(
        table=summary.label_rows() or [{"(no labels)": ""}],
        key=f"{key}-labels",
        description=f"per label, model version {summary.model_version}",
    )
    return summary


@task(name="measure-tracks", cache_policy=NO_CACHE, **RETRY)
def measure_videos(
    connection: LabelStudioConnection, project_id: int, model_version: str | None, iou_threshold: float
) -> tuple[TrackQuality, list[ErrorRow]]:
    """A video project's tracks: per label MOTA, IDF1 and HOTA of the version against people's
    (None: the project's model version), and the videos that could not be read."""
    progress = Progress(0, f"prelabel-quality-project-{project_id}-progress", unit="tasks read")
    with connection.client() as client:
        pairs = load_track_pairs(client, project_id, model_version, progress=progress.advance)
    return measure_tracks(pairs, project_id, iou_threshold), pairs.errors


@task(name="write-track-report", cache_policy=NO_CACHE)
def write_track_report(out_dir: Path, summary: TrackQuality, errors: list[ErrorRow]) -> TrackQuality:
    """The CSV and JSON files, then a markdown and a table artifact."""
    summary = write_track_quality(out_dir, summary, errors)
    key = f"prelabel-quality-project-{summary.project_id}"
    create_markdown_artifact(markdown=summary.markdown(), key=key, description="model tracks vs people's")
    create_table_artifact(
        table=summary.label_rows() or [{"(no labels)": ""}],
        key=f"{key}-labels",
        description=f"per label, model version {summary.model_version}",
    )
    return summary
