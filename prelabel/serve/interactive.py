"""Clicks and boxes from Label Studio's smart tools, made into masks (``is_interactive``).

Label Studio sends one task and a ``context``: the regions the person just made with a
``smart="true"`` control, each in percent of the displayed image. A ``keypointlabels`` result
is a click (``is_positive`` false: a click off the object); a ``rectanglelabels`` result is a
box around it. Both become one ``Prompt`` for the segmenter, answered with the object's brush.
A box drawn with the *find-all* control (a smart ``RectangleLabels`` named ``find_all``, by
default) asks for every similar instance on the image instead (``InstanceFinder``).

Answers fill the project's own controls: smart controls are the person's prompting tools, so
results never go to them (a config with only smart rectangles gets masks alone). Region ids are
fresh per answer: Label Studio adds the regions to what is on the page, where an id seen twice
would merge two objects.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from prelabel.core.errors import RefusedRequestError
from prelabel.labelstudio.config import LabelConfig
from prelabel.predict.models.base import ImageItem
from prelabel.predict.models.prompted import Prompt
from prelabel.records import Detections

__all__ = [
    "FeatureCache",
    "InstanceFinder",
    "Interaction",
    "fresh_ids",
    "prompt_config",
    "read_context",
    "smart_controls",
]

_SMART_TAGS = ("RectangleLabels", "KeyPointLabels")


@dataclass(frozen=True)
class Interaction:
    """One request's prompt in displayed pixels, the label it is for, and whether the box asks
    for every similar instance."""

    label: str
    prompt: Prompt
    find_all: bool = False


class InstanceFinder(Protocol):
    """Every instance like the one in a drawn box: SAM 3's exemplar prompt, or (SAM 2 alone) the
    served model's detections of the box's label (``prelabel.serve.findall``)."""

    def find(self, item: ImageItem, box: npt.NDArray[np.float64], label: str) -> Detections:
        """Boxes (and masks) of every instance on ``item``'s image, the drawn one first."""
        ...


def smart_controls(label_config: str) -> frozenset[str]:
    """Names of the config's ``smart="true"`` RectangleLabels and KeyPointLabels (prompting tools)."""
    try:
        root = ElementTree.fromstring(label_config, forbid_dtd=True)
    except (DefusedXmlException, ElementTree.ParseError):
        return frozenset()  # parse_label_config has refused it already, with the reason
    return frozenset(
        str(element.get("name"))
        for element in root.iter()
        if element.tag in _SMART_TAGS and element.get("smart", "").lower() == "true" and element.get("name")
    )


def prompt_config(config: LabelConfig, smart: frozenset[str]) -> LabelConfig:
    """``config`` without its smart controls: where an interactive answer's regions go."""
    return dataclasses.replace(config, controls=tuple(c for c in config.controls if c.name not in smart))


def read_context(
    results: Sequence[Mapping[str, Any]], width: int, height: int, find_all_control: str
) -> Interaction:
    """The prompt in Label Studio's ``context.result`` (percent) on a ``width`` x ``height``
    image; a result prelabel cannot read refuses the request (422) with its position."""
    points: list[tuple[float, float]] = []
    labels: list[int] = []
    box: tuple[float, float, float, float] | None = None
    label: str | None = None
    find_all = False
    for i, result in enumerate(results):
        where = f"context.result[{i}]"
        kind = result.get("type") if isinstance(result, Mapping) else None
        value = result.get("value") if isinstance(result, Mapping) else None
        if kind not in ("keypointlabels", "rectanglelabels") or not isinstance(value, Mapping):
            raise RefusedRequestError(
                422,
                f"{where}: prelabel answers clicks (keypointlabels) and boxes (rectanglelabels), "
                f"got {str(kind)[:40]!r}",
            )
        named = value.get(kind)
        if not (isinstance(named, list) and named and isinstance(named[0], str) and named[0].strip()):
            raise RefusedRequestError(422, f"{where}: value.{kind} must name a label")
        x, y = (_percent(value, k, where) / 100 * side for k, side in (("x", width), ("y", height)))
        if kind == "keypointlabels":
            points.append((x, y))
            positive = result.get("is_positive", True)
            labels.append(0 if positive is False else 1)
            if positive is not False:
                label = label or named[0].strip()
            continue
        if value.get("rotation") is not None and _number(value, "rotation", where) % 360 != 0:
            raise RefusedRequestError(422, f"{where}: a rotated box cannot prompt the segmenter")
        w, h = (_percent(value, k, where) / 100 * side for k, side in (("width", width), ("height", height)))
        if w <= 0 or h <= 0:
            raise RefusedRequestError(422, f"{where}: the box has no area")
        box = (x, y, min(x + w, width), min(y + h, height))
        label = named[0].strip()
        find_all = result.get("from_name") == find_all_control
    if label is None:
        raise RefusedRequestError(422, "context: no click on an object and no box to segment")
    if find_all:
        points, labels = [], []  # the box is the example; clicks do not narrow a search for all
    return Interaction(
        label, Prompt(np.asarray(points), np.asarray(labels), box and np.asarray(box)), find_all
    )


def _percent(value: Mapping[str, Any], key: str, where: str) -> float:
    """``value[key]``, a finite number of percent, clamped to [0, 100] (drawn past an edge)."""
    return min(max(_number(value, key, where), 0.0), 100.0)


def _number(value: Mapping[str, Any], key: str, where: str) -> float:
    """``value[key]``, a finite number (else the request is refused, naming it)."""
    number = value.get(key)
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise RefusedRequestError(
            422, f"{where}: value.{key} must be a finite number, got {str(number)[:40]}"
        )
    return float(number)


def fresh_ids(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``results`` with new region ids (results sharing an id keep sharing their new one)."""
    renamed: dict[str, str] = {}
    out = []
    for result in results:
        old = str(result.get("id", ""))
        renamed.setdefault(old, uuid.uuid4().hex[:10])
        out.append({**result, "id": renamed[old]})
    return out


class FeatureCache:
    """The segmenter's features of the last ``size`` images, by content hash: the second click
    on an image skips the image encoder. Not locked on its own: callers hold the model lock,
    which ``make`` (the image encoder) needs anyway."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[str, Any] = OrderedDict()

    def get(self, sha256: str, make: Callable[[], Any]) -> tuple[Any, bool]:
        """The features of the image ``sha256`` and whether they were kept from before."""
        if sha256 in self._kept:
            self._kept.move_to_end(sha256)
            return self._kept[sha256], True
        features = make()
        self._kept[sha256] = features
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return features, False
