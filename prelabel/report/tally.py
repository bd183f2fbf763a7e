"""The tally of a posting run: what its batches add up to, kept apart from the flow that runs
them so the counting is tested without Prefect.

A run starts its ``RunSummary`` from the match (``start_summary``), adds each batch as it is
posted (``RunTally.add``), then fills the summary once (``RunTally.fill``); ``check_some_fine``
says when every image failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prelabel.core.errors import AllImagesFailedError
from prelabel.core.failures import ErrorRow
from prelabel.labelstudio.exemplars import NewRegions
from prelabel.labelstudio.matching import MatchResult
from prelabel.labelstudio.posting import PostReport
from prelabel.labelstudio.predictions import BatchBuild
from prelabel.predict.batches import InferResult
from prelabel.predict.videos import TrackedBatch, VideoPredictions
from prelabel.records import PredictionRecord
from prelabel.report.summary import RunSummary

__all__ = ["Paired", "RunTally", "start_line", "start_summary"]


class Paired(Protocol):
    """Files paired with tasks: what a run's match (or its tasks by id) gives."""

    task_ids: dict[str, int]
    imported: int
    match: MatchResult


def start_summary(
    project_id: int, model_version: str, seen: int, todo: Sequence[str], paired: Paired, dry_run: bool
) -> RunSummary:
    """The summary before any batch: what was seen, paired, imported, and skipped as done."""
    return RunSummary(
        project_id=project_id,
        model_version=model_version,
        images=seen,
        matched=len(paired.task_ids),
        imported=paired.imported,
        skipped=len(paired.task_ids) - len(todo),
        dry_run=dry_run,
        unmatched_files=len(paired.match.unmatched_files),
        unmatched_tasks=len(paired.match.unmatched_tasks),
    )


def start_line(summary: RunSummary, todo: int, unit: str) -> str:
    """The run's first line: how many files were seen, paired, left to do and done already."""
    return (
        f"{summary.images} {unit}, {summary.matched} matched, {todo} to do, {summary.skipped} already posted"
    )


@dataclass
class RunTally:
    """Counts, error rows and contact-sheet samples over a run's batches.

    ``earlier_errors`` are the rows from before the batches (files refused on import): they are
    reported but were never to do, so they do not count against the batches."""

    earlier_errors: list[ErrorRow] = field(default_factory=list)
    sample_size: int = 0
    errors: list[ErrorRow] = field(default_factory=list)
    unmatched_labels: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    unfilled: set[str] | None = None  # controls no batch filled: said once for the run
    model_counts: Counter[str] = field(default_factory=Counter)
    verified: Counter[str] = field(default_factory=Counter)
    samples: list[PredictionRecord] = field(default_factory=list)
    new_regions: list[NewRegions] = field(default_factory=list)
    regions: int = 0
    region_choices: int = 0
    cached: int = 0
    inferred: int = 0
    posted: int = 0
    replaced: int = 0

    def add(
        self,
        result: InferResult,
        records: Sequence[PredictionRecord],
        built: BatchBuild,
        posted: PostReport,
        found: Sequence[NewRegions] = (),
    ) -> str:
        """One batch: inferred (``result``), built into predictions, posted (``found``: the regions
        beyond people's boxes, when the model used them); returns the batch's line for the log."""
        self.errors += result.errors + built.errors
        self.unmatched_labels.update(built.unmatched_labels)
        self.dropped.update(built.dropped)
        self.regions += built.regions
        self.region_choices += built.region_choices
        self.unfilled = set(built.unfilled) if self.unfilled is None else self.unfilled & built.unfilled
        self.cached += result.cached
        self.inferred += result.inferred
        self.model_counts.update(result.model_counts)
        self.verified.update(result.verified)
        self.posted += posted.created
        self.replaced += posted.replaced
        self.samples += records[: self.sample_size - len(self.samples)]
        self.new_regions += found
        failed = len(result.errors) + len(built.errors)
        made = f"{posted.created} posted, {result.cached} from cache, {result.inferred} inferred"
        return f"{made}, {failed} failed"

    def add_videos(self, tracked: TrackedBatch, built: VideoPredictions, posted: PostReport) -> str:
        """One batch of videos: tracked, built into ``videorectangle`` predictions, posted; returns
        the batch's line for the log."""
        self.errors += tracked.errors + built.errors
        self.cached += tracked.cached
        self.inferred += tracked.inferred
        self.posted += posted.created
        self.replaced += posted.replaced
        self.regions += built.regions
        self.model_counts.update(tracks=built.regions, keyframes=built.keyframes)
        self.unmatched_labels.update(built.unmatched_labels)
        videos = len(tracked.tracks) + len(tracked.errors)
        return (
            f"{videos} videos: {built.regions} tracks, {built.keyframes} keyframes, {posted.created} posted"
        )

    @property
    def all_errors(self) -> list[ErrorRow]:
        """Every error row of the run: the earlier ones, then the batches'."""
        return self.earlier_errors + self.errors

    def fill(self, summary: RunSummary, *, verifier: bool, exemplars: bool) -> RunSummary:
        """``summary`` with the batches' counts (the verifier's table only when one ran; the
        regions beyond people's boxes only when the model used them)."""
        if exemplars:
            self.model_counts["regions beyond people's boxes"] = sum(row.new for row in self.new_regions)
        summary.regions, summary.region_choices = self.regions, self.region_choices
        summary.cached, summary.inferred = self.cached, self.inferred
        summary.posted, summary.replaced = self.posted, self.replaced
        summary.failed = len(self.all_errors)
        summary.model_counts = dict(self.model_counts) or None
        summary.verified = dict(self.verified) if verifier else None
        summary.unmatched_labels = sum(self.unmatched_labels.values())
        summary.dropped = dict(self.dropped) or None
        summary.tags_not_filled = sorted(self.unfilled) if self.unfilled else None
        return summary

    def check_some_fine(self, summary: RunSummary, todo: int, errors_csv: str) -> None:
        """Raise ``AllImagesFailedError`` when images failed and none was fine: posted, skipped as
        done already, or (in a dry run) to be imported."""
        fine = todo - len(self.errors) + summary.skipped + (summary.imported if summary.dry_run else 0)
        if self.all_errors and fine <= 0:
            raise AllImagesFailedError(
                f"every one of the {len(self.all_errors)} images failed; see {errors_csv}"
            )
