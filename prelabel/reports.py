"""Report files: unmatched labels (appended), unmatched files and tasks, posted payloads.

File names derived from task or image names are made safe: no directory parts, no
leading dots, only ``[-\\w.]`` characters, so a name like ``../../x`` cannot escape the
output directory.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prelabel.atomic import atomic_write, atomic_write_csv
from prelabel.labelstudio.matching import MatchResult

__all__ = [
    "RunSummary",
    "append_unmatched_labels",
    "safe_file_name",
    "write_payloads",
    "write_unmatched",
]


_UNSAFE = re.compile(r"[^-\w.]+")
_LABEL_COLUMNS = ["timestamp", "project", "model_version", "label", "count"]


def safe_file_name(name: str, max_length: int = 120) -> str:
    """A file name from any string: last path part, safe characters, never hidden or empty."""
    last = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", last).lstrip(".")
    return cleaned[:max_length] or "unnamed"


def append_unmatched_labels(
    path: Path,
    project_id: int,
    model_version: str,
    counts: Mapping[str, int],
    *,
    now: datetime | None = None,
) -> int:
    """Append one row per unmatched label (writing the header to a new file); returns rows."""
    if not counts:
        return 0
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(_LABEL_COLUMNS)
        for label, count in sorted(counts.items()):
            writer.writerow([stamp, project_id, model_version, label, count])
    return len(counts)


def write_unmatched(path: Path, result: MatchResult) -> int:
    """Every unmatched file and task with its reason, as CSV; returns rows."""
    rows = [("file", u.name, "", u.reason) for u in result.unmatched_files]
    rows += [("task", u.name, str(u.task_id), u.reason) for u in result.unmatched_tasks]
    atomic_write_csv(path, ["kind", "name", "task_id", "reason"], rows)
    return len(rows)


def write_payloads(out_dir: Path, payloads: Iterable[tuple[str, int, Mapping[str, Any]]]) -> list[Path]:
    """Write each posted prediction as ``<safe name>.task<id>.json`` inside ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    root = out_dir.resolve()
    written = []
    for name, task_id, payload in payloads:
        target = (out_dir / f"{safe_file_name(name)}.task{task_id}.json").resolve()
        if target.parent != root:
            raise ValueError(f"refusing to write outside {root}: {target}")
        atomic_write(target, json.dumps(payload))
        written.append(target)
    return written


@dataclass
class RunSummary:
    """The account of one run: counts, and where the report files are."""

    project_id: int
    model_version: str
    images: int = 0
    matched: int = 0
    imported: int = 0
    skipped: int = 0
    cached: int = 0
    inferred: int = 0
    posted: int = 0
    replaced: int = 0
    failed: int = 0
    unmatched_files: int = 0
    unmatched_tasks: int = 0
    unmatched_labels: int = 0
    dry_run: bool = False
    model_counts: dict[str, int] | None = None
    files: dict[str, str] | None = None

    def markdown(self) -> str:
        """The run as a markdown summary (the Prefect UI shows it as an artifact)."""
        rows = [
            ("images seen", self.images),
            ("matched to tasks", self.matched),
            ("imported as new tasks", self.imported),
            ("skipped (already have this model version)", self.skipped),
            ("predictions from the cache", self.cached),
            ("predictions from the model", self.inferred),
            ("predictions posted" + (" (dry run: nothing sent)" if self.dry_run else ""), self.posted),
            ("predictions replaced", self.replaced),
            ("images failed", self.failed),
            ("files without a task", self.unmatched_files),
            ("tasks without a file", self.unmatched_tasks),
            ("detections with labels the project lacks", self.unmatched_labels),
        ]
        title = f"# prelabel: project {self.project_id}, model version `{self.model_version}`"
        lines = [title, "", "| | count |", "| --- | ---: |"]
        rows += sorted((self.model_counts or {}).items())
        lines += [f"| {name} | {value:,} |" for name, value in rows]
        if self.files:
            lines += ["", "Files:", *(f"- {name}: `{path}`" for name, path in sorted(self.files.items()))]
            if "contact sheet" in self.files:
                lines += ["", f"![contact sheet]({Path(self.files['contact sheet']).resolve().as_uri()})"]
        return "\n".join(lines)
