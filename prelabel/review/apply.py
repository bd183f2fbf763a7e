"""Answers back into Label Studio: the predictions minus the regions people rejected, the
regions they accepted marked, each task's reviewed prediction changed in place.

``review apply`` keeps the model version ``<version>-reviewed`` beside the original, so nothing
is lost and the project can switch between them. Each answered item is found again in its
task's latest original prediction by what it is (``prelabel.review.identity``), not by region
id alone, so a repost keeps every answer. A "no" removes the item's region (every result
sharing its id: the rectangle and its per-region text), or for a whole-image item every
region of its label in the task; a "yes" marks the region(s) accepted: ``meta.reviewed`` is
``true`` on each of their results (the score stays the detector's). An answer whose region is
not there any more is counted, named in the answers CSV (``status``) and kept in the set for
the next apply: nothing is dropped in silence.

Each task keeps one reviewed prediction: made on the first apply, then changed in place
(``PATCH /api/predictions/<id>``), so its id is stable across applies and an apply that
changes nothing writes nothing. With ``annotate``, each task with accepted regions also gets
one annotation of them (remembered in the set; later applies change that one, or delete it
when nothing in the task is accepted any more); annotations people made are never touched.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prelabel.core.atomic import atomic_write_csv
from prelabel.core.errors import PrelabelError
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.posting import post_predictions
from prelabel.review.identity import match_regions, region_key
from prelabel.review.sets import Answer, ReviewItem, ReviewSet, region_label

__all__ = [
    "ANSWER_COLUMNS",
    "REVIEWED",
    "ApplySummary",
    "Review",
    "apply_answers",
    "review_task",
    "reviewed_version",
    "write_answers",
]

ANSWER_COLUMNS = (
    "item_id",
    "task_id",
    "prediction_id",
    "region_id",
    "image",
    "label",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    "answer",
    "held_out",
    "strategy",
    "reviewer",
    "answered_at",
    "previous_reviewer",
    "previous_answer",
    "status",
)
REVIEWED = "reviewed"
"""The key in a result's ``meta`` that marks a region people accepted (``true``)."""

APPLIED, NOT_FOUND, NO_PREDICTION = "applied", "region not found", "task has no prediction"


def reviewed_version(model_version: str) -> str:
    return f"{model_version}-reviewed"


@dataclass
class Review:
    """One task's reviewed results, what was removed and accepted, and each answer's fate."""

    result: list[dict[str, Any]]
    removed: int = 0
    accepted: set[str] = field(default_factory=set)  # region keys (identity.region_key)
    status: dict[int, str] = field(default_factory=dict)  # item id -> APPLIED / NOT_FOUND


def review_task(
    original: Mapping[str, Any], items: Sequence[ReviewItem], answers: Mapping[int, Answer]
) -> Review:
    """``original`` (a prediction) with the answers to ``items`` (the task's) applied."""
    results: list[dict[str, Any]] = [dict(r) for r in original.get("result") or []]
    answered = [item for item in items if item.id in answers]
    regions = match_regions(answered, results)
    rejected: set[str] = set()  # region keys
    accepted: set[str] = set()
    labels: dict[str, bool] = {}  # whole-image items: label -> yes
    status = {}
    for item in answered:
        yes = answers[item.id].yes
        if item.box is None:
            labels[item.label] = yes
            status[item.id] = APPLIED
        elif item.id in regions:
            (accepted if yes else rejected).add(regions[item.id])
            status[item.id] = APPLIED
        else:
            status[item.id] = NOT_FOUND
    keys = [region_key(index, result) for index, result in enumerate(results)]
    for key, result in zip(keys, results, strict=True):  # a whole-image answer covers its label's
        said = labels.get(region_label(result) or "")  # regions, and their text
        if said is not None:
            (accepted if said else rejected).add(key)
    review = Review([], status=status, accepted=accepted - rejected)
    for region, result in zip(keys, results, strict=True):
        if region in rejected or labels.get(region_label(result) or "") is False:
            review.removed += 1
            continue
        meta = {k: v for k, v in (result.get("meta") or {}).items() if k != REVIEWED}
        if region in review.accepted:
            meta[REVIEWED] = True
        if meta:
            result["meta"] = meta
        else:
            result.pop("meta", None)
        review.result.append(result)
    return review


def write_answers(
    path: str | Path,
    items: Iterable[ReviewItem],
    answers: Mapping[int, Answer],
    status: Mapping[int, str] | None = None,
) -> int:
    """The answered items as CSV (``ANSWER_COLUMNS``; answer ``yes``/``no``; ``status``: what the
    last apply did with it, empty when not applied), written whole."""
    rows = []
    for item in items:
        answer = answers.get(item.id)
        if answer is None:
            continue
        box: tuple[Any, ...] = item.box or ("", "", "", "")
        before = answer.previous
        previous = ("", "") if before is None else (before.reviewer or "", "yes" if before.yes else "no")
        rows.append(
            (
                item.id,
                item.task_id or "",
                item.prediction_id or "",
                item.region_id or "",
                item.image,
                item.label,
                *box,
                "" if item.score is None else item.score,
                "yes" if answer.yes else "no",
                int(answer.held_out),
                answer.strategy,
                answer.reviewer or "",
                answer.answered_at,
                *previous,
                (status or {}).get(item.id, ""),
            )
        )
    atomic_write_csv(path, ANSWER_COLUMNS, rows)
    return len(rows)


@dataclass
class ApplySummary:
    """What ``review apply`` did (or, with ``dry_run``, would do)."""

    project_id: int
    model_version: str
    dry_run: bool = False
    tasks: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    accepted: int = 0
    answers: int = 0
    not_applied: dict[int, str] = field(default_factory=dict)  # item id -> why
    annotations: dict[str, int] = field(default_factory=dict)  # created / updated / deleted

    def lines(self) -> list[str]:
        verb = "would write" if self.dry_run else "wrote"
        out = [
            f"{verb} {self.model_version} in project {self.project_id}: {self.created} created, "
            f"{self.updated} updated in place, {self.unchanged} unchanged ({self.tasks} tasks); "
            f"{self.removed} rejected results removed, {self.accepted} accepted regions marked; "
            f"{self.answers} answers written"
        ]
        if self.annotations:
            out.append(
                "annotations of accepted regions: "
                + ", ".join(f"{n} {what}" for what, n in self.annotations.items())
            )
        if self.not_applied:
            shown = ", ".join(str(i) for i in sorted(self.not_applied)[:10])
            more = "" if len(self.not_applied) <= 10 else f" and {len(self.not_applied) - 10} more"
            out.append(
                f"{len(self.not_applied)} answers not applied: their region is not in the current "
                f"predictions (items {shown}{more}; status in the answers CSV); kept for the next apply"
            )
        return out


def apply_answers(
    client: LabelStudioClient,
    review_set: ReviewSet,
    answers_csv: str | Path,
    *,
    chunk_size: int = 500,
    dry_run: bool = False,
    annotate: bool = False,
) -> ApplySummary:
    """Write ``<version>-reviewed`` (see the module docstring) and the answers CSV."""
    meta = review_set.meta
    if meta.get("source") != "project":
        raise PrelabelError(f"{review_set.path} was made from a references file: nothing to apply to")
    project_id, original = int(meta["project_id"]), meta["model_version"]
    version = reviewed_version(original)
    if original not in client.model_versions(project_id):
        raise PrelabelError(f"project {project_id} has no predictions of {original!r} any more")
    answers = review_set.answers()
    by_task: dict[int, list[ReviewItem]] = defaultdict(list)
    for item in review_set.items():
        if item.task_id is not None and item.id in answers:
            by_task[item.task_id].append(item)
    summary = ApplySummary(project_id, version, dry_run)
    status: dict[int, str] = {}
    reviews: dict[int, Review] = {}
    new: dict[int, dict[str, Any]] = {}
    tasks = list(client.iter_tasks(project_id, full=True))
    for task in tasks:
        source = _latest(task, original)
        if source is None:
            continue
        review = review_task(source, by_task.pop(task.id, []), answers)
        reviews[task.id] = review
        status |= review.status
        summary.removed += review.removed
        summary.accepted += len(review.accepted)
        wanted: dict[str, Any] = {"result": review.result}
        if source.get("score") is not None:
            wanted["score"] = source["score"]
        current = _latest(task, version)
        if current is None:
            new[task.id] = wanted
        elif current.get("result") == wanted["result"] and current.get("score") == wanted.get("score"):
            summary.unchanged += 1
        else:
            summary.updated += 1
            if not dry_run:
                client.update_prediction(int(current["id"]), wanted)
        if not dry_run:
            for extra in _all(task, version)[1:]:  # a second reviewed prediction (an older apply's)
                client.delete_prediction(int(extra["id"]))
    for items in by_task.values():
        status |= dict.fromkeys((item.id for item in items), NO_PREDICTION)
    summary.tasks = len(reviews)
    report = post_predictions(client, project_id, new, version, {}, chunk_size=chunk_size, dry_run=dry_run)
    summary.created = report.created
    summary.not_applied = {i: why for i, why in status.items() if why != APPLIED}
    if annotate:
        summary.annotations = _annotate(client, review_set, project_id, version, reviews, dry_run)
    summary.answers = write_answers(answers_csv, review_set.items(), answers, status)
    return summary


def _all(task: Task, version: str) -> list[Mapping[str, Any]]:
    """The task's predictions of ``version``, latest (highest id) first."""
    found = [p for p in task.predictions if isinstance(p, Mapping) and p.get("model_version") == version]
    return sorted(found, key=lambda p: -int(p.get("id") or 0))


def _latest(task: Task, version: str) -> Mapping[str, Any] | None:
    found = _all(task, version)
    return found[0] if found else None


def _annotate(
    client: LabelStudioClient,
    review_set: ReviewSet,
    project_id: int,
    version: str,
    reviews: Mapping[int, Review],
    dry_run: bool,
) -> dict[str, int]:
    """One annotation per task of its accepted regions' results, made, changed or deleted."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    made = review_set.annotations()
    tasks = {t.id: t for t in client.iter_tasks(project_id, full=True)}  # with the ids just made
    for task_id, review in reviews.items():
        result = [copy.deepcopy(r) for r in review.result if (r.get("meta") or {}).get(REVIEWED)]
        for r in result:
            r.pop("score", None)  # an annotation is what people said, not how sure the model was
        task = tasks.get(task_id)
        existing = {int(a["id"]): a for a in (task.annotations if task else ()) if "id" in a}
        mine = existing.get(made.get(task_id, -1))
        if not result:
            if mine is not None:
                counts["deleted"] += 1
                if not dry_run:
                    client.delete_annotation(int(mine["id"]))
            continue
        if mine is None:
            counts["created"] += 1
            if not dry_run:
                parent = _latest(task, version) if task else None
                extra = {"parent_prediction": int(parent["id"])} if parent else {}
                created = client.create_annotation(task_id, result, **extra)
                review_set.remember_annotation(task_id, int(created["id"]))
        elif mine.get("result") != result:
            counts["updated"] += 1
            if not dry_run:
                client.update_annotation(int(mine["id"]), {"result": result})
        else:
            counts["unchanged"] += 1
    return {what: n for what, n in counts.items() if n}
