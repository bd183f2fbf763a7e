"""A model version's quality report: measured from paired tasks, written as files.

Files in the output folder: ``labels.csv`` (a row per region type and label), ``regions.csv``
(every predicted region and every missed annotated one: tp/fp/fn, IoU or keypoint error,
fate), ``region_choices.csv`` (per perRegion Choices control and pairing, a count per
(predicted, annotated) choice), ``summary.json``, ``errors.csv`` (results that could not be
read, charts that could not be drawn) and ``charts/`` (a PNG per label). Result types the
converter does not read (ellipses, ratings, ...) are counted by type.
"""

from __future__ import annotations

import json
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any

from prelabel.core.atomic import atomic_write, atomic_write_csv
from prelabel.core.failures import report_part, write_errors
from prelabel.core.paths import safe_file_name
from prelabel.labelstudio.config import LabelConfig
from prelabel.quality.chart import write_label_chart
from prelabel.quality.coco import coco_ap
from prelabel.quality.markdown import cell, text
from prelabel.quality.matching import AREA_TYPES, DEFAULT_KEYPOINT_TOLERANCE, Fate
from prelabel.quality.metrics import (
    ChoiceScore,
    LabelScore,
    RegionChoiceScore,
    RegionRow,
    TextScore,
    choice_scores,
    label_scores,
    region_choice_scores,
    text_score,
)
from prelabel.quality.pairs import Pairs

__all__ = [
    "LABEL_COLUMNS",
    "REGION_CHOICE_COLUMNS",
    "QualityReport",
    "QualitySummary",
    "measure_quality",
    "write_quality",
]

LABEL_COLUMNS = [
    "type",
    "label",
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "ap",
    "ap50",
    "mean_iou",
    "mean_error_px",
    *(f.value for f in Fate),
    "reviewed",
]
"""``labels.csv``; ``reviewed``: predicted regions people accepted in ``review apply``."""
_REGION_COLUMNS = [
    "task",
    "image",
    "type",
    "label",
    "region_id",
    "score",
    "outcome",
    "iou",
    "error_px",
    "fate",
    "reviewed",
]
REGION_CHOICE_COLUMNS = ["control", "pairing", "predicted", "annotated", "regions"]
"""``region_choices.csv``: a row per control, pairing and (predicted, annotated) choice; several
options of one region are joined by ``; ``, none is an empty cell."""


@dataclass
class QualitySummary:
    """What the report found (the flow's result); ``files`` names what was written."""

    project_id: int
    model_version: str
    iou_threshold: float
    keypoint_tolerance: float
    tasks: int
    unannotated: int
    labels: list[LabelScore]
    choices: list[ChoiceScore]
    region_choices: list[RegionChoiceScore]
    texts: TextScore
    not_measured: dict[str, int]
    errors: int
    files: dict[str, str] = field(default_factory=dict)
    charts_failed: int = 0  # charts that could not be drawn (rows in errors.csv)

    def label_rows(self) -> list[dict[str, Any]]:
        """One row per region type and label (``LABEL_COLUMNS``); undefined values are None."""
        return [
            dict(
                zip(
                    LABEL_COLUMNS,
                    [
                        s.kind,
                        s.label,
                        s.tp,
                        s.fp,
                        s.fn,
                        s.precision,
                        s.recall,
                        s.f1,
                        s.ap,
                        s.ap50,
                        s.mean_iou,
                        s.mean_error_px,
                        *(s.fates[f] for f in Fate),
                        s.reviewed,
                    ],
                    strict=True,
                )
            )
            for s in self.labels
        ]

    def region_choice_rows(self) -> list[dict[str, Any]]:
        """One row per perRegion Choices control, pairing and (predicted, annotated) choice
        (``REGION_CHOICE_COLUMNS``), most frequent first."""
        return [
            dict(
                zip(
                    REGION_CHOICE_COLUMNS,
                    [s.control, s.pairing, "; ".join(dt), "; ".join(gt), n],
                    strict=True,
                )
            )
            for s in self.region_choices
            for (dt, gt), n in s.confusion.most_common()
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "model_version": self.model_version,
            "iou_threshold": self.iou_threshold,
            "keypoint_tolerance": self.keypoint_tolerance,
            "tasks": self.tasks,
            "unannotated": self.unannotated,
            "labels": self.label_rows(),
            "fates": {f.value: sum(s.fates[f] for s in self.labels) for f in Fate},
            "choices": [asdict(c) | {"accuracy": c.accuracy} for c in self.choices],
            "region_choices": [
                {
                    "control": c.control,
                    "pairing": c.pairing,
                    "compared": c.compared,
                    "correct": c.correct,
                    "accuracy": c.accuracy,
                    "confusion": [
                        {"predicted": list(dt), "annotated": list(gt), "regions": n}
                        for (dt, gt), n in c.confusion.most_common()
                    ],
                }
                for c in self.region_choices
            ],
            "texts": asdict(self.texts) | {"cer": self.texts.cer},
            "not_measured": self.not_measured,
            "errors": self.errors,
            "charts_failed": self.charts_failed,
            "files": self.files,
        }

    def markdown(self) -> str:
        lines = [
            f"# Quality of model version {text(self.model_version)}, project {self.project_id}",
            "",
            f"{self.tasks} tasks with a prediction and an annotation (latest, not cancelled); "
            f"{self.unannotated} predicted tasks not annotated yet. Matched one-to-one at IoU "
            f"{self.iou_threshold}; keypoints within {self.keypoint_tolerance} of the image diagonal.",
            "",
            "| " + " | ".join(LABEL_COLUMNS) + " |",
            "|" + "---|" * len(LABEL_COLUMNS),
        ]
        lines += ["| " + " | ".join(cell(v) for v in row.values()) + " |" for row in self.label_rows()]
        lines.append("")
        for c in self.choices:
            lines.append(
                f"- Choices {text(c.control)}: {cell(c.accuracy)} accuracy ({c.correct} of {c.tasks} tasks)"
            )
        for r in self.region_choices:
            confusion = ", ".join(
                f"{_choice(dt)} -> {_choice(gt)} {n}" for (dt, gt), n in r.confusion.most_common()
            )
            lines.append(
                f"- Per-region choices {text(r.control)}, {r.pairing} regions: {cell(r.accuracy)} "
                f"accuracy ({r.correct} of {r.compared}); predicted -> annotated: {confusion}"
            )
        lines.append(
            f"- Texts: {self.texts.compared} compared, {self.texts.corrected} corrected, "
            f"character error rate {cell(self.texts.cer)}"
        )
        reviewed = sum(s.reviewed for s in self.labels)
        if reviewed:
            lines.append(
                f"- {reviewed} predicted regions were accepted in review (meta.reviewed; per label "
                "in the reviewed column)"
            )
        if self.not_measured:
            counted = ", ".join(f"{kind} ({n})" for kind, n in sorted(self.not_measured.items()))
            lines.append(f"- Not measured, counted: {counted}")
        if self.errors:
            lines.append(f"- {self.errors} results could not be read (errors.csv)")
        if self.charts_failed:
            lines.append(f"- {self.charts_failed} charts could not be drawn (errors.csv)")
        return "\n".join(lines)


@dataclass
class QualityReport:
    """The summary and the per-region rows behind it."""

    summary: QualitySummary
    regions: list[RegionRow]


def measure_quality(
    pairs: Pairs,
    config: LabelConfig,
    project_id: int,
    iou_threshold: float = 0.5,
    keypoint_tolerance: float = DEFAULT_KEYPOINT_TOLERANCE,
) -> QualityReport:
    """Every number of the report, from the paired tasks."""
    scores, rows, matched = label_scores(pairs.tasks, iou_threshold, keypoint_tolerance)
    for kind in AREA_TYPES:
        for label, (ap, ap50) in coco_ap(pairs.tasks, kind).items():
            scores[(kind, label)].ap, scores[(kind, label)].ap50 = ap, ap50
    summary = QualitySummary(
        project_id=project_id,
        model_version=pairs.model_version,
        iou_threshold=iou_threshold,
        keypoint_tolerance=keypoint_tolerance,
        tasks=len(pairs.tasks),
        unannotated=pairs.unannotated,
        labels=list(scores.values()),
        choices=choice_scores(pairs.tasks, config),
        texts=text_score(pairs.tasks, config),
        region_choices=region_choice_scores(pairs.tasks, matched, config),
        not_measured=dict(pairs.not_measured),
        errors=len(pairs.errors),
    )
    return QualityReport(summary, rows)


def write_quality(out_dir: Path, report: QualityReport, pairs: Pairs) -> QualitySummary:
    """Write the report's files into ``out_dir``; the summary comes back naming them."""
    summary = report.summary
    charts = out_dir / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    files = {
        "labels": out_dir / "labels.csv",
        "regions": out_dir / "regions.csv",
        "region_choices": out_dir / "region_choices.csv",
        "errors": out_dir / "errors.csv",
    }
    atomic_write_csv(files["labels"], LABEL_COLUMNS, ([*r.values()] for r in summary.label_rows()))
    regions = [
        [*astuple(r)[:-2], r.fate and r.fate.value, "yes" if r.reviewed else ""] for r in report.regions
    ]
    atomic_write_csv(files["regions"], _REGION_COLUMNS, regions)
    atomic_write_csv(
        files["region_choices"], REGION_CHOICE_COLUMNS, ([*r.values()] for r in summary.region_choice_rows())
    )
    errors = list(pairs.errors)
    used: set[str] = set()
    for score in summary.labels:
        name = safe_file_name(f"{score.kind}-{score.label}")
        while name in used:
            name += "_"
        used.add(name)
        with report_part(errors, str(charts / f"{name}.png")):  # a chart that fails: a row, not the report
            files[f"chart {score.kind} {score.label}"] = write_label_chart(charts / f"{name}.png", score)
    summary.charts_failed = len(errors) - len(pairs.errors)
    write_errors(files["errors"], errors)
    summary.files = {key: str(path) for key, path in files.items()}
    summary.files["summary"] = str(out_dir / "summary.json")
    atomic_write(out_dir / "summary.json", json.dumps(summary.to_json(), indent=2))
    return summary


def _choice(options: tuple[str, ...]) -> str:
    """A region's options in the markdown: joined by ``; ``, ``(none)`` where it has none."""
    return text("; ".join(options)) if options else "(none)"
