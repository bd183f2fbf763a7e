"""The numbers of a quality report, from paired tasks: per-label counts at an IoU (keypoints:
within a distance), region fates, Choices accuracy (task-wide, and per region), and the
character error rate of corrected texts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein

from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.regions import Region
from prelabel.quality.matching import (
    KEYPOINTS,
    MEASURED_TYPES,
    Fate,
    fate,
    greedy_match,
    iou_matrix,
    point_closeness,
    point_distances,
)
from prelabel.quality.pairs import TaskPair

__all__ = [
    "ChoiceScore",
    "LabelScore",
    "Matched",
    "RegionChoiceScore",
    "RegionRow",
    "TextScore",
    "choice_scores",
    "label_scores",
    "region_choice_scores",
    "text_score",
]

Matched = list[tuple[Region, Region]]
"""(predicted, annotated) regions that ``label_scores`` matched one-to-one."""


@dataclass
class LabelScore:
    """One label of one region type: matches at the IoU threshold (keypoints: within the
    tolerance), fates, and AP (when computed: not for keypoints).

    ``iou_sum`` adds up the IoU of matched pairs (for brushes and polygons, mask IoU);
    ``error_sum`` the pixel distance of matched keypoints."""

    kind: str
    label: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou_sum: float = 0.0
    error_sum: float = 0.0
    fates: Counter[Fate] = field(default_factory=Counter)
    reviewed: int = 0  # predicted regions people accepted in review (meta.reviewed)
    ap: float | None = None
    ap50: float | None = None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else None

    @property
    def mean_iou(self) -> float | None:
        return self.iou_sum / self.tp if self.tp and self.kind != KEYPOINTS else None

    @property
    def mean_error_px(self) -> float | None:
        """Mean distance of matched keypoints to the annotated ones, pixels."""
        return self.error_sum / self.tp if self.tp and self.kind == KEYPOINTS else None


@dataclass(frozen=True)
class RegionRow:
    """One predicted or annotated region: whether it matched (tp, fp or fn), at what IoU (a
    keypoint: at what distance, pixels), its fate (None for a region without an id: nothing
    ties it to a region on the other side)."""

    task_id: int
    image: str
    kind: str
    label: str
    region_id: str
    score: float | None
    outcome: str
    iou: float | None
    error_px: float | None
    fate: Fate | None
    reviewed: bool = False


def label_scores(
    pairs: Sequence[TaskPair], threshold: float, keypoint_tolerance: float
) -> tuple[dict[tuple[str, str], LabelScore], list[RegionRow], Matched]:
    """Per (type, label) counts and fates over every task, the row of every region, and the
    matched regions: areas match at IoU >= ``threshold``, keypoints within
    ``keypoint_tolerance`` x the image diagonal."""
    scores: dict[tuple[str, str], LabelScore] = {}
    rows: list[RegionRow] = []
    matched: Matched = []
    for pair in pairs:
        for kind in MEASURED_TYPES:
            for label in sorted({r.label for r in [*pair.predicted, *pair.annotated] if r.kind == kind}):
                score = scores.setdefault((kind, label), LabelScore(kind, label))
                rows += _count(pair, score, threshold, keypoint_tolerance, matched)
    return dict(sorted(scores.items())), rows, matched


def _count(
    pair: TaskPair, score: LabelScore, threshold: float, keypoint_tolerance: float, matched: Matched
) -> list[RegionRow]:
    """One task's regions of ``score``'s type and label: matched (pairs added to ``matched``),
    counted, each given its row."""
    kind, label = score.kind, score.label
    dt = [r for r in pair.predicted if r.kind == kind and r.label == label]
    gt = [r for r in pair.annotated if r.kind == kind and r.label == label]
    annotated_by_id = {r.region_id: r for r in pair.annotated if r.kind == kind and r.region_id}
    predicted_ids = {r.region_id for r in pair.predicted if r.kind == kind and r.region_id}
    dt_scores = [pair.scores.get((kind, r.region_id), 1.0) for r in dt]
    if kind == KEYPOINTS:
        distances = point_distances(dt, gt)
        matches = greedy_match(point_closeness(distances, gt, keypoint_tolerance), dt_scores, 0.0)
        errors = {m.predicted: float(distances[m.predicted, m.annotated]) for m in matches}
        score.error_sum += sum(errors.values())
    else:
        matches = greedy_match(iou_matrix(kind, dt, gt), dt_scores, threshold)
        errors = {}
        score.iou_sum += sum(m.similarity for m in matches)
    matched += [(dt[m.predicted], gt[m.annotated]) for m in matches]
    by_dt = {m.predicted: m for m in matches}
    matched_gt = {m.annotated for m in matches}
    score.tp += len(matches)
    score.fp += len(dt) - len(matches)
    score.fn += len(gt) - len(matches)
    rows = []
    for i, region in enumerate(dt):
        what = fate(region, annotated_by_id.get(region.region_id)) if region.region_id else None
        if what is not None:
            score.fates[what] += 1
        hit = by_dt.get(i)
        iou = hit.similarity if hit and kind != KEYPOINTS else None
        reviewed = (kind, region.region_id) in pair.reviewed
        score.reviewed += reviewed
        rows.append(
            RegionRow(
                pair.task_id,
                pair.image,
                kind,
                label,
                region.region_id,
                dt_scores[i],
                "tp" if hit else "fp",
                iou,
                errors.get(i),
                what,
                reviewed,
            )
        )
    for j, region in enumerate(gt):
        what = Fate.EDITED if region.region_id in predicted_ids else Fate.ADDED
        if not region.region_id:
            what = None
        if what is Fate.ADDED:
            score.fates[Fate.ADDED] += 1
        if j not in matched_gt:
            rows.append(
                RegionRow(
                    pair.task_id, pair.image, kind, label, region.region_id, None, "fn", None, None, what
                )
            )
    return rows


@dataclass(frozen=True)
class ChoiceScore:
    """One task-wide Choices control: tasks where the model chose, and where people kept its choice."""

    control: str
    tasks: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.tasks if self.tasks else None


def choice_scores(pairs: Sequence[TaskPair], config: LabelConfig) -> list[ChoiceScore]:
    """Per Choices control: a task counts where the prediction chose; it is right when the
    annotation's choices for that control are the same set (none left is a miss)."""
    out = []
    for control in (c.name for c in config.controls if c.kind == "Choices"):
        chosen = [p for p in pairs if p.predicted_values.get(control)]
        right = sum(
            set(p.predicted_values[control]) == set(p.annotated_values.get(control, [])) for p in chosen
        )
        if chosen:
            out.append(ChoiceScore(control, len(chosen), right))
    return out


@dataclass(frozen=True)
class TextScore:
    """Per-region texts compared (predicted vs the annotation's text of the same region id):
    how many, how many people changed, and the character error rate over all of them
    (edit distance / reference length, the annotation's text being the reference)."""

    compared: int
    corrected: int
    edits: int
    reference_chars: int

    @property
    def cer(self) -> float | None:
        return self.edits / self.reference_chars if self.reference_chars else None


def text_score(pairs: Sequence[TaskPair], config: LabelConfig) -> TextScore:
    """Every per-region TextArea value the prediction gave whose region the annotation kept.

    Lines are joined with a newline; Levenshtein distance is rapidfuzz's (unit costs)."""
    controls = [c.name for c in config.controls if c.kind == "TextArea"]
    compared = corrected = edits = chars = 0
    for pair in pairs:
        for region, kept in _same_id(pair):
            for control in controls:
                if control not in region.attributes or control in pair.predicted_values:
                    continue
                predicted = "\n".join(region.attributes[control])
                reference = "\n".join(kept.attributes.get(control, []))
                compared += 1
                corrected += predicted != reference
                edits += Levenshtein.distance(predicted, reference)
                chars += len(reference)
    return TextScore(compared, corrected, edits, chars)


def _same_id(pair: TaskPair) -> Iterator[tuple[Region, Region]]:
    """Each predicted region with the annotated region of its type and id (kept or edited)."""
    annotated = {(r.kind, r.region_id): r for r in pair.annotated if r.region_id}
    for region in pair.predicted:
        kept = annotated.get((region.kind, region.region_id))
        if kept is not None:
            yield region, kept


ChoiceSet = tuple[str, ...]
"""A region's options of one control, sorted; empty where it has none."""


@dataclass
class RegionChoiceScore:
    """One perRegion Choices control over one pairing of regions (``matched``: the one-to-one
    matches at the IoU or keypoint tolerance; ``same id``: a predicted region and the annotated
    region of its id, kept or edited): pairs where either side chose, those where both chose
    the same set, and a count per (predicted, annotated) set, ``()`` for none."""

    control: str
    pairing: str
    compared: int = 0
    correct: int = 0
    confusion: Counter[tuple[ChoiceSet, ChoiceSet]] = field(default_factory=Counter)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.compared if self.compared else None


def region_choice_scores(
    pairs: Sequence[TaskPair], matched: Matched, config: LabelConfig
) -> list[RegionChoiceScore]:
    """Per perRegion Choices control, over the matched regions and over the regions of the same id.

    A region the model gave no choice and people did (or the reverse) is a miss; neither
    choosing is not compared. A perRegion result whose id names no region of its annotation
    is read as the task's value, which every region of that side then carries: on such a task
    the control's regions are not compared (as for texts)."""
    controls = [c.name for c in config.controls if c.kind == "Choices" and c.per_region]
    tasks = {p.task_id: p for p in pairs}
    same_id = [found for pair in pairs for found in _same_id(pair)]
    out = []
    for control in controls:
        for pairing, regions in (("matched", matched), ("same id", same_id)):
            score = RegionChoiceScore(control, pairing)
            for predicted, annotated in regions:
                task = tasks[predicted.task_id]
                if control in task.predicted_values or control in task.annotated_values:
                    continue
                dt = tuple(sorted(set(predicted.attributes.get(control, []))))
                gt = tuple(sorted(set(annotated.attributes.get(control, []))))
                if dt or gt:
                    score.compared += 1
                    score.correct += dt == gt
                    score.confusion[dt, gt] += 1
            if score.compared:
                out.append(score)
    return out
