"""``quality``: how good a model version's predictions were, against what people kept."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.common import connection
from flows.params import QualityParams
from prelabel.quality import QualitySummary
from tasks.quality import measure, write_quality_report

__all__ = ["quality"]


@flow(name="quality", log_prints=False)
def quality(params: QualityParams) -> QualitySummary:
    """Measure the version's predictions against the latest annotations, then report."""
    _, ls = connection(params)
    report, pairs = measure(
        ls, params.project_id, params.model_version, params.iou_threshold, params.keypoint_tolerance
    )
    return write_quality_report(Path(params.output_dir), report, pairs)
