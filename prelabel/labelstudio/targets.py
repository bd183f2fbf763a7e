"""Which of a labeling config's controls a prediction fills (the builder's targets)."""

from __future__ import annotations

from dataclasses import dataclass

from prelabel.core.errors import LabelConfigError
from prelabel.labelstudio.config import ControlTag, LabelConfig

__all__ = ["Controls", "fillable_controls", "prediction_controls"]


@dataclass(frozen=True)
class Controls:
    """The controls one prediction fills (None: not posted); ``region_choices``: the per-region
    Choices, in config order (a region takes the first one shown for it)."""

    rect: ControlTag | None
    brush: ControlTag | None
    polygon: ControlTag | None
    keypoints: ControlTag | None
    text: ControlTag | None
    choices: ControlTag | None
    region_choices: tuple[ControlTag, ...] = ()


def prediction_controls(config: LabelConfig, boxes: bool | None, masks: bool | None) -> Controls:
    """The image's controls a prediction fills; ``boxes``/``masks`` True require their tag,
    False leave it out, None take it when the config has it."""
    if boxes is None:
        rect = config.find("RectangleLabels")
    else:
        rect = config.require("RectangleLabels", "posting boxes") if boxes else None
    if masks is None:
        brush = config.find("BrushLabels")
    else:
        brush = config.require("BrushLabels", "posting masks") if masks else None
    image = config.image.name
    text = next(
        (c for c in config.controls if c.kind == "TextArea" and c.to_name == image and c.per_region), None
    )
    found = Controls(
        rect,
        brush,
        config.find("PolygonLabels"),
        config.find("KeyPointLabels"),
        text if rect is not None else None,
        config.image_choices_control,
        tuple(config.choice_controls(per_region=True)),
    )
    if not any((found.rect, found.brush, found.polygon, found.keypoints, found.choices)):
        raise LabelConfigError(
            "nothing to post: the labeling config needs a <RectangleLabels>, <BrushLabels>, "
            f"<PolygonLabels>, <KeyPointLabels> or task-level <Choices> control on image {image!r}"
        )
    return found


def fillable_controls(config: LabelConfig, boxes: bool | None = None, masks: bool | None = None) -> set[str]:
    """The image's controls a prediction could fill, as reports name them (a task-wide
    TextArea is the annotator's: never filled); ``boxes``/``masks`` False leave out the
    rectangles (and the texts they carry) and brushes the run was told not to post."""
    image = config.image.name
    skipped = {"RectangleLabels", "TextArea"} if boxes is False else set()
    skipped |= {"BrushLabels"} if masks is False else set()
    wanted = [
        c for c in config.controls if c.to_name == image and c.kind != "Labels" and c.kind not in skipped
    ]
    return {c.tag for c in wanted if c.kind != "TextArea" or c.per_region}
