"""Pull human annotations back: COCO JSON and a one-row-per-region table.

By default each task contributes its latest non-cancelled annotation; ``all_annotators``
keeps every non-cancelled one. Every image tag comes back (``prelabel.labelstudio.regions``
extracts, ``prelabel.labelstudio.exports`` writes): rectangles (a rotated one keeps its exact
corners and angle beside its enclosing box), brushes as COCO RLE, polygons, keypoints
(grouped under their parent region), Choices and TextArea values per task and per region.
Each result is converted on its own: a malformed one becomes an error row
(``pull_errors.csv``) and the rest is exported; other result types are counted by type.
Pulls are incremental: the raw tasks are kept in the output directory and a later pull
fetches only tasks updated since the last one (a task deleted in Label Studio stays until a
``full`` pull).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prelabel.core.atomic import atomic_write, atomic_writer
from prelabel.core.failures import ErrorRow, write_errors
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.exports import to_coco, to_table, value_controls
from prelabel.labelstudio.formats import Format
from prelabel.labelstudio.regions import (
    EXPORTED_TYPES,
    Extraction,
    Region,
    extract_regions,
    regions,
    select_annotations,
)

__all__ = [
    "ERRORS_FILE",
    "EXPORTED_TYPES",
    "Extraction",
    "Format",
    "PullReport",
    "Region",
    "extract_regions",
    "pull_annotations",
    "regions",
    "select_annotations",
    "to_coco",
    "to_table",
]

ERRORS_FILE = "pull_errors.csv"
_STORE = "tasks.json"
_STATE = "pull_state.json"


@dataclass
class PullReport:
    """What a pull fetched and wrote; ``errors`` are also in ``pull_errors.csv``."""

    fetched: int
    stored: int
    regions: int
    files: list[Path]
    errors: list[ErrorRow] = field(default_factory=list)
    not_exported: dict[str, int] = field(default_factory=dict)
    errors_file: Path | None = None


def pull_annotations(
    client: LabelStudioClient,
    project_id: int,
    out_dir: Path,
    *,
    formats: Sequence[Format] = ("coco", "parquet"),
    all_annotators: bool = False,
    full: bool = False,
    page_size: int = 500,
    progress: Callable[[int], None] | None = None,
) -> PullReport:
    """Fetch annotated tasks (only those changed since the last pull unless ``full``) and write exports;
    ``progress(1)`` is called for each task read."""
    out_dir.mkdir(parents=True, exist_ok=True)
    project = client.get_project(project_id)
    store_path, state_path = out_dir / _STORE, out_dir / _STATE
    stored: dict[str, Any] = {}
    since = None
    if not full and store_path.exists() and state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("project") == project_id:
            stored = json.loads(store_path.read_text())
            since = state.get("last_updated_at")
    fetched = 0
    latest = since or ""
    for task in client.iter_tasks(project_id, full=True, updated_after=since, page_size=page_size):
        fetched += 1
        if progress is not None:
            progress(1)
        latest = max(latest, task.updated_at)
        if task.annotations:
            stored[str(task.id)] = dict(task.raw)
        else:
            stored.pop(str(task.id), None)
    _write_json(store_path, stored)
    _write_json(state_path, {"project": project_id, "last_updated_at": latest or None})

    tasks = [Task.from_json(raw) for _, raw in sorted(stored.items(), key=lambda item: int(item[0]))]
    extraction = extract_regions(tasks, project.config, all_annotators)
    found = extraction.regions
    files = []
    if "coco" in formats:
        files.append(out_dir / "annotations.coco.json")
        _write_json(files[-1], to_coco(found, project.config, extraction.task_values))
    controls = value_controls(project.config, found, extraction.task_values)
    table = to_table(found, extraction.task_values, controls) if {"parquet", "csv"} & set(formats) else None
    if table is not None and "parquet" in formats:
        files.append(out_dir / "regions.parquet")
        with atomic_writer(files[-1]) as handle:
            table.to_parquet(handle, index=False)
    if table is not None and "csv" in formats:
        files.append(out_dir / "regions.csv")
        atomic_write(files[-1], table.to_csv(index=False))
    errors_file = out_dir / ERRORS_FILE
    write_errors(errors_file, extraction.errors)
    return PullReport(
        fetched=fetched,
        stored=len(stored),
        regions=len(found),
        files=files,
        errors=extraction.errors,
        not_exported=dict(sorted(extraction.not_exported.items())),
        errors_file=errors_file,
    )


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data))
