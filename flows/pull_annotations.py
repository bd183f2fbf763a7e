"""``pull-annotations``: human annotations back to COCO JSON and Parquet/CSV, incrementally."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.common import connection
from flows.params import PullParams
from prelabel.labelstudio.pullback import PullReport
from tasks.labelstudio import pull

__all__ = ["pull_annotations"]


@flow(name="pull-annotations", log_prints=False)
def pull_annotations(params: PullParams) -> PullReport:
    """Fetch what changed since the last pull and rewrite the exports."""
    _, ls = connection(params)
    return pull(
        ls, params.project_id, Path(params.output_dir), params.formats, params.all_annotators, params.full
    )
