"""The report task: files in the output directory and artifacts in the Prefect UI."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from prelabel.core.failures import ErrorRow, report_part, write_errors
from prelabel.labelstudio.exemplars import NewRegions, write_new_regions
from prelabel.labelstudio.matching import (
    MATCHES_REPORT_COLUMNS,
    MatchResult,
    matches_report_rows,
    write_matches_report,
)
from prelabel.records import PredictionRecord
from prelabel.report.contactsheet import write_contact_sheet
from prelabel.report.summary import RunSummary, append_unmatched_labels, write_payloads, write_unmatched

__all__ = ["Progress", "progress_listener", "write_new_regions_report", "write_payload_files", "write_report"]

_TABLE_ROWS = 500  # the UI is for reading: the CSV files hold everything


@dataclass
class Progress:
    """A progress artifact and any in-process listeners (the CLI's bar, and what an interrupted
    command says it had done). ``unit`` names what is counted; a ``total`` of 0 is not known
    yet (a source listed as it is read). The artifact is updated at most once a second."""

    total: int
    key: str
    unit: str = "images"
    done: int = 0
    posted: int = 0
    id: UUID | None = field(default=None, init=False)
    _shown: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        created = create_progress_artifact(progress=0.0, key=self.key, description=f"{self.unit} processed")
        self.id = created if isinstance(created, UUID) else None
        self._tell()

    def advance(self, count: int = 1, posted: int = 0) -> None:
        """``count`` more done, of which ``posted`` predictions were posted."""
        self.done += count
        self.posted += posted
        now = time.monotonic()
        if self.id is not None and self.total and (now - self._shown >= 1.0 or self.done >= self.total):
            self._shown = now
            update_progress_artifact(self.id, progress=min(100.0, 100.0 * self.done / self.total))
        self._tell()

    def _tell(self) -> None:
        for listener in list(_listeners):
            listener(self)


_listeners: list[Callable[[Progress], None]] = []


@contextmanager
def progress_listener(listener: Callable[[Progress], None]) -> Iterator[None]:
    """Call ``listener(progress)`` at every batch of flows run in this process."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


@task(name="write-payloads", cache_policy=NO_CACHE)
def write_payload_files(out_dir: Path, rows: Sequence[tuple[str, int, dict[str, Any]]]) -> int:
    """Each posted prediction as JSON, one file per image."""
    return len(write_payloads(out_dir, rows))


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(
    summary: RunSummary,
    output_dir: Path,
    unmatched_csv: Path,
    unmatched_labels: Counter[str],
    match: MatchResult,
    errors: Sequence[ErrorRow],
    samples: Sequence[PredictionRecord],
) -> RunSummary:
    """Write the contact sheet and the CSV files, then the artifacts that point at them (a
    contact sheet that cannot be drawn is a row in ``errors.csv``: the report is still written)."""
    files: dict[str, str] = {}
    errors = list(errors)
    with report_part(errors, str(output_dir / "contact_sheet.png")):
        sheet = write_contact_sheet(output_dir / "contact_sheet.png", samples)
        if sheet is not None:
            files["contact sheet"] = str(sheet)
    if unmatched_labels:
        append_unmatched_labels(unmatched_csv, summary.project_id, summary.model_version, unmatched_labels)
        files["unmatched labels"] = str(unmatched_csv)
    files["unmatched files and tasks"] = str(output_dir / "unmatched.csv")
    write_unmatched(output_dir / "unmatched.csv", match)
    files["matches other than by exact name"] = str(output_dir / "matches.csv")
    write_matches_report(output_dir / "matches.csv", match)
    files["errors"] = str(output_dir / "errors.csv")
    write_errors(output_dir / "errors.csv", errors)
    summary.files = files

    key = f"prelabel-project-{summary.project_id}"
    create_markdown_artifact(markdown=summary.markdown(), key=f"{key}-summary", description="prelabel run")
    label_rows: list[dict[str, Any]] = [
        {"label": k, "count": v} for k, v in unmatched_labels.most_common(_TABLE_ROWS)
    ]
    _table(f"{key}-unmatched-labels", "model labels the project does not have (not posted)", label_rows)
    pairs: list[dict[str, Any]] = [
        {"kind": "file", "name": u.name, "task": "", "reason": u.reason} for u in match.unmatched_files
    ]
    pairs += [
        {"kind": "task", "name": u.name, "task": u.task_id, "reason": u.reason} for u in match.unmatched_tasks
    ]
    _table(f"{key}-unmatched", "files and tasks left unpaired, with reasons", pairs)
    made = [dict(zip(MATCHES_REPORT_COLUMNS, row, strict=True)) for row in matches_report_rows(match)]
    _table(f"{key}-matches", "pairs made other than by exact name (fuzzy: with its score)", made)
    error_rows: list[dict[str, Any]] = [{"file": e.file, "stage": e.stage, "error": e.error} for e in errors]
    _table(f"{key}-errors", "images that failed, by stage", error_rows)
    return summary


@task(name="write-new-regions", cache_policy=NO_CACHE)
def write_new_regions_report(output_dir: Path, project_id: int, rows: Sequence[NewRegions]) -> Path:
    """Per annotated task and label, the regions found beyond people's boxes: CSV and a table."""
    path = write_new_regions(output_dir / "new_regions.csv", rows)
    table: list[dict[str, Any]] = [vars(row) for row in sorted(rows, key=lambda r: (-r.new, r.task, r.label))]
    _table(
        f"prelabel-project-{project_id}-new-regions",
        "regions found beyond the boxes people drew (exemplars), by task and label",
        table,
    )
    return path


def _table(key: str, description: str, rows: list[dict[str, Any]]) -> None:
    """A table artifact of at most _TABLE_ROWS rows (the CSV files hold everything)."""
    create_table_artifact(table=rows[:_TABLE_ROWS] or [{"(none)": ""}], key=key, description=description)
