"""Report files: unmatched labels (appended), unmatched files and tasks, posted payloads.

File names derived from task or image names are made safe: no directory parts, no
leading dots, only ``[-\\w.]`` characters, so a name like ``../../x`` cannot escape the
output directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prelabel.core.atomic import atomic_write, atomic_write_csv, write_csv_rows
from prelabel.core.paths import safe_file_name, within
from prelabel.ingest.sampling import StratumCount
from prelabel.labelstudio.matching import MatchResult

if TYPE_CHECKING:  # the export's code loads image libraries: not for a summary
    from prelabel.export.batches import BatchExport

__all__ = [
    "ExportSummary",
    "InferSummary",
    "IngestSummary",
    "RunSummary",
    "ShardSummary",
    "append_unmatched_labels",
    "write_payloads",
    "write_unmatched",
]


_LABEL_COLUMNS = ["timestamp", "project", "model_version", "label", "count"]


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
    rows = [[stamp, project_id, model_version, label, count] for label, count in sorted(counts.items())]
    with path.open("a", newline="", encoding="utf-8") as handle:
        write_csv_rows(handle, [_LABEL_COLUMNS] if new else [], rows)
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
        target = within(root, out_dir / f"{safe_file_name(name)}.task{task_id}.json")
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
    verified: dict[str, int] | None = None  # "<label> kept|dropped|cached": a verifier's boxes
    tags_not_filled: list[str] | None = None  # the config's controls the model filled nowhere
    regions: int = 0  # regions in the built predictions (a detection's rectangle, brush... count once)
    region_choices: int = 0  # per-region Choices results in them
    dropped: dict[str, int] | None = None  # shapes and values left out of the predictions, by reason

    def markdown(self) -> str:
        """The run as a markdown summary (the Prefect UI shows it as an artifact)."""
        rows = [
            ("images seen", self.images),
            ("matched to tasks", self.matched),
            ("imported as new tasks" + (" (dry run: would be)" if self.dry_run else ""), self.imported),
            ("skipped (already have this model version)", self.skipped),
            ("predictions from the cache", self.cached),
            ("predictions from the model", self.inferred),
            ("predictions posted" + (" (dry run: nothing sent)" if self.dry_run else ""), self.posted),
            ("predictions replaced", self.replaced),
            ("images failed", self.failed),
            ("files without a task", self.unmatched_files),
            ("tasks without a file", self.unmatched_tasks),
            ("detections with labels the project lacks", self.unmatched_labels),
            ("regions in the predictions", self.regions),
        ]
        if self.region_choices:
            rows.append(("per-region choices in them", self.region_choices))
        title = f"# prelabel: project {self.project_id}, model version `{self.model_version}`"
        lines = [title, "", "| | count |", "| --- | ---: |"]
        rows += sorted((self.model_counts or {}).items())
        lines += [f"| {name} | {value:,} |" for name, value in rows]
        if self.tags_not_filled:
            lines += [
                "",
                "Tags the model filled on no image: " + ", ".join(f"`{t}`" for t in self.tags_not_filled),
            ]
        if self.dropped:
            left = ", ".join(f"{reason} ({n:,})" for reason, n in sorted(self.dropped.items()))
            lines += ["", f"Left out of the predictions: {left}"]
        if self.verified is not None:
            lines += ["", *_verified_table(self.verified)]
        if self.files:
            lines += ["", "Files:", *(f"- {name}: `{path}`" for name, path in sorted(self.files.items()))]
            if "contact sheet" in self.files:
                lines += ["", f"![contact sheet]({Path(self.files['contact sheet']).resolve().as_uri()})"]
        return "\n".join(lines)


def _verified_table(counts: dict[str, int]) -> list[str]:
    """Boxes the verifier kept and dropped, and those whose verdict came from the cache, per label."""
    labels = sorted({key.rsplit(" ", 1)[0] for key in counts})
    kinds = ("kept", "dropped", "cached")
    rows = [
        f"| {label} | " + " | ".join(f"{counts.get(f'{label} {k}', 0):,}" for k in kinds) + " |"
        for label in labels
    ]
    header = "| label | boxes kept | boxes dropped | verdicts from the cache |"
    return ["Verifier:", "", header, "| --- | ---: | ---: | ---: |", *rows]


def _table(title: str, rows: Sequence[tuple[str, int]]) -> list[str]:
    return [title, "", "| | count |", "| --- | ---: |", *(f"| {name} | {value:,} |" for name, value in rows)]


@dataclass
class InferSummary:
    """What ``infer`` (two-step, step 1) did."""

    images: int = 0
    written: int = 0
    cached: int = 0
    inferred: int = 0
    failed: int = 0
    errors_csv: str = ""

    def line(self) -> str:
        return (
            f"{self.images} images: {self.written} raw files, {self.cached} from cache, "
            f"{self.inferred} inferred, {self.failed} failed"
        )


@dataclass
class IngestSummary:
    """What ``ingest`` did: counts, the manifest, its report files and the sample's strata."""

    source: str
    manifest: str
    listed: int = 0
    kept: int = 0
    duplicates: int = 0
    failed: int = 0
    files: dict[str, str] = field(default_factory=dict)
    strata: list[StratumCount] = field(default_factory=list)
    unit: str = "images"  # what the manifest's rows are: images (or frames), or whole videos

    def markdown(self) -> str:
        """The ingest as markdown (the Prefect UI shows it as an artifact)."""
        counts = [
            ("listed", self.listed),
            ("kept", self.kept),
            ("duplicates", self.duplicates),
            ("failed", self.failed),
        ]
        lines = _table(f"# prelabel ingest\n\nSource `{self.source}` -> `{self.manifest}`", counts)
        if self.strata:
            lines += ["", "| stratum | available | sampled |", "| --- | ---: | ---: |"]
            lines += [f"| {s.stratum} | {s.available:,} | {s.sampled:,} |" for s in self.strata]
        return "\n".join(lines)


@dataclass
class ExportSummary:
    """What ``export`` wrote, what was already there, and where the key list is."""

    to: str
    images: int = 0
    failed: int = 0
    written: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    keys: str = ""
    unmatched: dict[str, int] = field(default_factory=dict)
    shards: int = 0

    @classmethod
    def of(cls, to: str, images: int, total: BatchExport, keys: str, shards: int) -> ExportSummary:
        """The summary of an export's batches (``total``), its key list and its shards."""
        written, skipped, unmatched = dict(total.written), dict(total.skipped), dict(total.unmatched)
        return cls(to, images, len(total.errors), written, skipped, keys, unmatched, shards)

    def markdown(self) -> str:
        """The export as markdown (the Prefect UI shows it as an artifact)."""
        kinds = sorted(set(self.written) | set(self.skipped))
        rows = [f"| {k} | {self.written.get(k, 0):,} | {self.skipped.get(k, 0):,} |" for k in kinds]
        lines = [
            f"# prelabel export to `{self.to}`",
            "",
            "| objects | written | already there |",
            "| --- | ---: | ---: |",
            *rows,
            "",
            f"images failed: {self.failed}",
        ]
        if self.shards:
            lines.append(f"shards: {self.shards}")
        if self.unmatched:
            lines.append(
                "labels outside the categories (left out): "
                + ", ".join(f"{k} ({n})" for k, n in sorted(self.unmatched.items()))
            )
        return "\n".join(lines)


@dataclass
class ShardSummary:
    """One shard of a scaled-out run: counts and who ran it (also its marker in the cache)."""

    shard: str
    images: int = 0
    cached: int = 0
    inferred: int = 0
    failed: int = 0
    worker: str = ""
    pid: int = 0
