"""``prelabel quality``: how good a model version's predictions were, against what people kept."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prelabel.defaults import DEFAULT_KEYPOINT_TOLERANCE
from prelabel.paths import safe_file_name
from prelabel_cli.app import app
from prelabel_cli.checks import check_project
from prelabel_cli.options import ApiKey, LsUrl, ProjectId, use_api_key
from prelabel_cli.runs import run_flow

if TYPE_CHECKING:
    from prelabel.quality import QualitySummary

__all__ = ["quality"]


@app.command()
def quality(
    project_id: ProjectId,
    model_version: Annotated[
        str, typer.Option("--model-version", help="The model version whose predictions are measured.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default prelabel-output/quality/project-P/VERSION)."),
    ] = None,
    iou_threshold: Annotated[
        float, typer.Option("--iou", min=0.01, max=1.0, help="IoU at which a prediction matches a region.")
    ] = 0.5,
    keypoint_tolerance: Annotated[
        float,
        typer.Option(
            "--keypoint-tolerance",
            min=0.0001,
            max=1.0,
            help="Distance within which a predicted keypoint matches one people placed, as a fraction "
            "of the image diagonal (0.02 is 44 px on a 1920x1080 image).",
        ),
    ] = DEFAULT_KEYPOINT_TOLERANCE,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Per label: precision, recall, F1, COCO AP and mask IoU of a model version's predictions
    (boxes, brushes, polygons; keypoints within a distance, with their mean pixel error)
    against each task's latest annotation; what people kept, edited, deleted and added; Choices
    accuracy and the character error rate of corrected texts. Writes CSV, JSON and a PNG per label.

    Example: prelabel quality --project-id 3 --model-version detr-1a2b3c
    """
    from flows.params import QualityParams
    from flows.quality import quality as quality_flow

    use_api_key(api_key, ls_url)
    folder = out or Path("prelabel-output") / "quality" / f"project-{project_id}" / safe_file_name(
        model_version
    )
    params = QualityParams.model_validate(
        {"project_id": project_id, "model_version": model_version, "out": str(folder), "ls_url": ls_url,
         "iou_threshold": iou_threshold, "keypoint_tolerance": keypoint_tolerance}
    )  # fmt: skip
    check_project(params.ls_url, params.project_id, params.model_version)
    run_flow(quality_flow, params, show=_lines)


def _lines(summary: QualitySummary) -> str:
    return f"{summary.markdown()}\n\nwritten: {summary.files['summary']} and beside it"
