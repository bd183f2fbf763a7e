"""Answers back into Label Studio: the predictions minus the regions people rejected.

``review apply`` posts a new model version ``<version>-reviewed`` beside the original, so
nothing is lost and the project can switch between them. A "no" to a box removes that
region (every result sharing its id: the rectangle and its per-region text); a "no" to a
whole-image item (``per image`` sets) removes every region of that label in that task. Kept
regions are posted unchanged (same ids, values and scores). Tasks without a rejection get
their original prediction copied, so the reviewed version is complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prelabel.atomic import atomic_write_csv
from prelabel.errors import PrelabelError
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.posting import post_predictions
from prelabel.review.sets import Answer, ReviewItem, ReviewSet, region_label

__all__ = [
    "ANSWER_COLUMNS",
    "ApplySummary",
    "Rejections",
    "apply_answers",
    "reviewed_predictions",
    "reviewed_version",
    "write_answers",
]

ANSWER_COLUMNS = ("item_id", "task_id", "prediction_id", "region_id", "image", "label",
                  "x1", "y1", "x2", "y2", "score", "answer", "held_out", "strategy", "reviewer",
                  "answered_at", "previous_reviewer", "previous_answer")  # fmt: skip


def reviewed_version(model_version: str) -> str:
    return f"{model_version}-reviewed"


@dataclass(frozen=True)
class Rejections:
    """What the "no" answers remove: region ids per task, and labels per task (whole-image items)."""

    regions: frozenset[tuple[int, str]]
    labels: frozenset[tuple[int, str]]

    @classmethod
    def of(cls, review_set: ReviewSet) -> Rejections:
        meta = review_set.meta
        if meta.get("source") != "project":
            raise PrelabelError(f"{review_set.path} was made from a references file: nothing to apply to")
        answers = review_set.answers()
        regions, labels = set(), set()
        for item in review_set.items():
            answer = answers.get(item.id)
            if answer is None or answer.yes or item.task_id is None:
                continue
            if item.box is None:
                labels.add((item.task_id, item.label))
            elif item.region_id:
                regions.add((item.task_id, item.region_id))
            else:
                raise PrelabelError(f"item {item.id} has no region id: its region cannot be found")
        return cls(frozenset(regions), frozenset(labels))


def reviewed_predictions(
    tasks: Iterable[Any], model_version: str, rejections: Rejections
) -> tuple[dict[int, dict[str, Any]], int]:
    """Task id -> the reviewed prediction (``result`` and ``score``), and the results removed.

    ``tasks`` come from ``iter_tasks(full=True)``; each task's latest prediction of
    ``model_version`` is the original.
    """
    out: dict[int, dict[str, Any]] = {}
    removed = 0
    for task in tasks:
        found = [
            p for p in task.predictions if isinstance(p, Mapping) and p.get("model_version") == model_version
        ]
        if not found:
            continue
        original = max(found, key=lambda p: int(p.get("id") or 0))
        kept = []
        for result in original.get("result") or []:
            region = str(result.get("id") or "")
            label = region_label(result)
            if (task.id, region) in rejections.regions or (task.id, label) in rejections.labels:
                removed += 1
            else:
                kept.append(result)
        prediction: dict[str, Any] = {"result": kept}
        if original.get("score") is not None:
            prediction["score"] = original["score"]
        out[task.id] = prediction
    return out, removed


def write_answers(path: str | Path, items: Iterable[ReviewItem], answers: Mapping[int, Answer]) -> int:
    """The answered items as CSV (``ANSWER_COLUMNS``; answer ``yes``/``no``), written whole."""
    rows = []
    for item in items:
        answer = answers.get(item.id)
        if answer is None:
            continue
        box: tuple[Any, ...] = item.box or ("", "", "", "")
        before = answer.previous
        previous = ("", "") if before is None else (before.reviewer or "", "yes" if before.yes else "no")
        rows.append((item.id, item.task_id or "", item.prediction_id or "", item.region_id or "", item.image,
                     item.label, *box, "" if item.score is None else item.score,
                     "yes" if answer.yes else "no", int(answer.held_out), answer.strategy,
                     answer.reviewer or "", answer.answered_at, *previous))  # fmt: skip
    atomic_write_csv(path, ANSWER_COLUMNS, rows)
    return len(rows)


@dataclass
class ApplySummary:
    """What ``review apply`` did."""

    project_id: int
    model_version: str
    tasks: int = 0
    removed: int = 0
    posted: int = 0
    answers: int = 0
    dry_run: bool = False

    def line(self) -> str:
        done = "would post" if self.dry_run else "posted"
        return (f"{done} {self.tasks} predictions of {self.model_version} to project {self.project_id}: "
                f"{self.removed} rejected results removed; {self.answers} answers written")  # fmt: skip


def apply_answers(
    client: LabelStudioClient,
    review_set: ReviewSet,
    answers_csv: str | Path,
    *,
    chunk_size: int = 500,
    dry_run: bool = False,
) -> ApplySummary:
    """Post ``<version>-reviewed`` (replacing an earlier one of the same tasks) and write the CSV.

    Applying again after more answers replaces the reviewed predictions: they always follow
    the answers as they are now.
    """
    rejections = Rejections.of(review_set)
    meta = review_set.meta
    project_id, original = int(meta["project_id"]), meta["model_version"]
    version = reviewed_version(original)
    if original not in client.model_versions(project_id):
        raise PrelabelError(f"project {project_id} has no predictions of {original!r} any more")
    predictions, removed = reviewed_predictions(
        client.iter_tasks(project_id, full=True), original, rejections
    )
    summary = ApplySummary(project_id, version, len(predictions), removed, dry_run=dry_run)
    report = post_predictions(client, project_id, predictions, version, {}, overwrite=True,
                              chunk_size=chunk_size, dry_run=dry_run)  # fmt: skip
    summary.posted = report.created
    summary.answers = write_answers(answers_csv, review_set.items(), review_set.answers())
    return summary
