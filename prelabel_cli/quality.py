"""``prelabel quality``: how good a model version's predictions were, against what people kept."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.params import QualityParams
from prelabel.core.paths import safe_file_name
from prelabel_cli.checks import check_project
from prelabel_cli.collector import collector_paused
from prelabel_cli.options import (
    ADVANCED,
    BASICS,
    OUTPUT,
    ApiKey,
    LsUrl,
    ProjectId,
    flow_default,
    flow_option,
    renamed,
    use_api_key,
)
from prelabel_cli.runs import run_flow

if TYPE_CHECKING:
    from prelabel.quality import QualitySummary
    from prelabel.quality.tracks import TrackQuality

__all__ = ["quality"]


# This module's top-level commands; ``prelabel_cli.app`` adds them to ``prelabel`` in help order.
commands = typer.Typer()


@commands.command(
    cls=renamed(out="--output-dir", iou="--iou-threshold"), rich_help_panel="Review and quality"
)
def quality(
    project_id: ProjectId,
    model_version: Annotated[str, flow_option(QualityParams, "model_version", BASICS)],
    output_dir: Annotated[Path | None, flow_option(QualityParams, "output_dir", OUTPUT)] = None,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
    iou_threshold: Annotated[float, flow_option(QualityParams, "iou_threshold", ADVANCED)] = flow_default(
        QualityParams, "iou_threshold"
    ),
    keypoint_tolerance: Annotated[float, flow_option(QualityParams, "keypoint_tolerance", ADVANCED)] = (
        flow_default(QualityParams, "keypoint_tolerance")
    ),
) -> None:
    """How good a model version's predictions were, against what people kept: per label,
    precision, recall, F1, COCO AP and IoU (keypoints within a distance); what people kept,
    edited, deleted and added; choices accuracy and the character error rate of corrected texts.
    On a video project: per label MOTA, IDF1 and HOTA of the version's tracks against people's.

    Writes CSV, JSON and a chart per label.

    Example:

    prelabel quality --project-id 3 --model-version grounded-sam2-v1
    """
    with collector_paused():
        from flows.quality import quality as quality_flow

    use_api_key(api_key, ls_url)
    folder = output_dir or Path("prelabel-output") / "quality" / f"project-{project_id}" / safe_file_name(
        model_version
    )
    params = QualityParams.model_validate(
        {
            "project_id": project_id,
            "model_version": model_version,
            "output_dir": str(folder),
            "ls_url": ls_url,
            "iou_threshold": iou_threshold,
            "keypoint_tolerance": keypoint_tolerance,
        }
    )
    check_project(params.ls_url, params.project_id, params.model_version)
    run_flow(quality_flow, params, show=_lines)


def _lines(summary: QualitySummary | TrackQuality) -> str:
    return f"{summary.markdown()}\n\nwritten: {summary.files['summary']} and beside it"
