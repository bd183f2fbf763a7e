"""Tasks of the quality report: measure a model version against the annotations, then write
the files and the artifacts that point at them."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from prelabel.quality import Pairs, QualityReport, QualitySummary, load_pairs, measure_quality, write_quality
from tasks.common import RETRY, LabelStudioConnection
from tasks.reporting import Progress

__all__ = ["measure", "write_quality_report"]


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
    create_table_artifact(table=summary.label_rows() or [{"(no labels)": ""}], key=f"{key}-labels",
                          description=f"per label, model version {summary.model_version}")  # fmt: skip
    return summary
