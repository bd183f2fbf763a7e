"""The typed records that travel through every stage.

``Detections`` holds a model's output for one image as parallel arrays (supervision's
shape): boxes xyxy in displayed-image pixels (n, 4), scores (n,), labels (n,), COCO RLE
masks kept compressed, optional texts (OCR), outlines (OCR quadrilaterals, in pixels),
keypoints (a pose model's, per person box) and region choices (a classifier's, per box);
``choices`` classify the whole image.
``PredictionRecord`` ties them to the image and the model signature. Raw files use the
DINO-X result shape,
``{"objects": [{"bbox": [x1, y1, x2, y2], "score", "category", "mask": {"counts", "size"}}]}``,
so files written by the existing DINO-X -> Label Studio scripts load as they are; prelabel's
additions are optional keys: per object ``text``, ``polygon`` ([[x, y], ...]) and
``keypoints`` ([{"label", "x", "y", "score"}]) and ``choices`` (the object's classes,
[{"label", "score"}]), and beside ``objects`` the image's ``choices`` (same shape).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from prelabel.convert.masks import CocoRle, normalize_coco
from prelabel.core.atomic import atomic_write
from prelabel.core.errors import MaskError, PredictionFileError
from prelabel.core.images import ImageInfo

__all__ = [
    "COCO_KEYPOINTS",
    "Choice",
    "Detections",
    "Keypoint",
    "ModelSignature",
    "PredictionRecord",
    "detections_from_raw",
    "detections_to_raw",
    "load_raw_file",
    "save_raw_file",
]


Point = tuple[float, float]

COCO_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
"""The 17 COCO person keypoints, in COCO's order: what pose models name and projects label."""


class Keypoint(NamedTuple):
    """One named point of a detection (a pose model's joint), in displayed pixels."""

    label: str
    x: float
    y: float
    score: float = 1.0


class Choice(NamedTuple):
    """One class of the whole image or of one detection (a zero-shot classifier's), with its score."""

    label: str
    score: float = 1.0


@dataclass(frozen=True, eq=False)
class Detections:
    """One image's detections as parallel arrays; every operation returns Detections.

    ``polygons`` and ``keypoints`` are per detection (``None``: it has none), and so are
    ``region_choices`` (``()``: none); ``choices`` belong to the image, so selecting
    detections keeps them.
    """

    xyxy: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 4)))
    scores: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    labels: tuple[str, ...] = ()
    masks: tuple[CocoRle | None, ...] = ()
    texts: tuple[str | None, ...] = ()
    polygons: tuple[tuple[Point, ...] | None, ...] = ()
    keypoints: tuple[tuple[Keypoint, ...] | None, ...] = ()
    choices: tuple[Choice, ...] = ()
    region_choices: tuple[tuple[Choice, ...], ...] = ()

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float64)
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (n, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        masks = tuple(self.masks) or (None,) * n
        texts = tuple(self.texts) or (None,) * n
        polygons = tuple(self.polygons) or (None,) * n
        keypoints = tuple(self.keypoints) or (None,) * n
        region_choices = tuple(self.region_choices) or ((),) * n
        for name, size in (
            ("scores", scores.shape[0]),
            ("labels", len(self.labels)),
            ("masks", len(masks)),
            ("texts", len(texts)),
            ("polygons", len(polygons)),
            ("keypoints", len(keypoints)),
            ("region_choices", len(region_choices)),
        ):
            if size != n:
                raise ValueError(f"{name} must have {n} entries to match xyxy (n, 4), got {size}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", tuple(str(v) for v in self.labels))
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "texts", texts)
        object.__setattr__(
            self,
            "polygons",
            tuple(None if p is None else tuple((float(x), float(y)) for x, y in p) for p in polygons),
        )
        object.__setattr__(
            self, "keypoints", tuple(None if k is None else tuple(Keypoint(*p) for p in k) for k in keypoints)
        )
        object.__setattr__(self, "choices", tuple(Choice(*c) for c in self.choices))
        object.__setattr__(
            self, "region_choices", tuple(tuple(Choice(*c) for c in found) for found in region_choices)
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: slice | Sequence[int] | npt.NDArray[Any]) -> Detections:
        """Select detections by slice, integer indices or a boolean mask."""
        positions = np.arange(len(self))[index]
        return Detections(
            xyxy=self.xyxy[positions],
            scores=self.scores[positions],
            labels=tuple(self.labels[i] for i in positions),
            masks=tuple(self.masks[i] for i in positions),
            texts=tuple(self.texts[i] for i in positions),
            polygons=tuple(self.polygons[i] for i in positions),
            keypoints=tuple(self.keypoints[i] for i in positions),
            choices=self.choices,
            region_choices=tuple(self.region_choices[i] for i in positions),
        )

    def with_min_score(self, threshold: float) -> Detections:
        """Keep detections scoring at least ``threshold``."""
        return self[self.scores >= threshold]

    def replace(self, **changes: Any) -> Detections:
        """A copy with some arrays replaced (shapes checked again)."""
        return dataclasses.replace(self, **changes)

    @property
    def has_masks(self) -> bool:
        return any(m is not None for m in self.masks)


@dataclass(frozen=True, slots=True)
class ModelSignature:
    """Everything that changes a model's raw output: the cache key's model half."""

    model: str
    revision: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable hex digest of model, revision and params (sorted JSON)."""
        text = json.dumps(
            {"model": self.model, "revision": self.revision, "params": dict(self.params)},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One image with its detections; later stages add the task and the result."""

    image: ImageInfo
    detections: Detections
    model: ModelSignature | None = None
    uri: str = ""
    task_id: int | None = None


def detections_from_raw(data: Any, source: str = "<raw>") -> Detections:
    """Parse a DINO-X-shaped result (also wrapped as ``result`` or ``data.result``)."""
    objects = _objects(data, source)
    boxes: list[list[float]] = []
    scores: list[float] = []
    labels: list[str] = []
    masks: list[CocoRle | None] = []
    texts: list[str | None] = []
    polygons: list[tuple[Point, ...] | None] = []
    keypoints: list[tuple[Keypoint, ...] | None] = []
    region_choices: list[tuple[Choice, ...]] = []
    for i, obj in enumerate(objects):
        where = f"objects[{i}]"
        if not isinstance(obj, Mapping):
            raise PredictionFileError(source, f"{where} must be an object, got {type(obj).__name__}")
        bbox = obj.get("bbox")
        if not (isinstance(bbox, list | tuple) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise PredictionFileError(
                source, f"{where}.bbox must be [x1, y1, x2, y2] finite numbers, got {str(bbox)[:80]}"
            )
        score = obj.get("score", 1.0)
        if not _is_number(score):
            raise PredictionFileError(source, f"{where}.score must be a finite number, got {str(score)[:80]}")
        label = obj.get("category", obj.get("label"))
        if not isinstance(label, str) or not label.strip():
            raise PredictionFileError(source, f"{where}.category must be a non-empty string, got {label!r}")
        mask = obj.get("mask")
        if mask is not None:
            try:
                mask = normalize_coco(mask)
            except MaskError as exc:
                raise PredictionFileError(source, f"{where}.mask: {exc}") from exc
        text = obj.get("text")
        if text is not None and not isinstance(text, str):
            raise PredictionFileError(source, f"{where}.text must be a string, got {text!r}")
        boxes.append([float(v) for v in bbox])
        scores.append(float(score))
        labels.append(label.strip())
        masks.append(mask)
        texts.append(text)
        polygons.append(_polygon(obj.get("polygon"), source, f"{where}.polygon"))
        keypoints.append(_keypoints(obj.get("keypoints"), source, f"{where}.keypoints"))
        region_choices.append(_choices(obj.get("choices"), source, f"{where}.choices"))
    return Detections(
        xyxy=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        scores=np.asarray(scores, dtype=np.float64),
        labels=tuple(labels),
        masks=tuple(masks),
        texts=tuple(texts),
        polygons=tuple(polygons),
        keypoints=tuple(keypoints),
        choices=_choices(_container(data).get("choices"), source),
        region_choices=tuple(region_choices),
    )


def detections_to_raw(detections: Detections) -> dict[str, Any]:
    """The DINO-X result shape, JSON-ready (floats as Python floats)."""
    objects: list[dict[str, Any]] = []
    for i in range(len(detections)):
        obj: dict[str, Any] = {
            "bbox": [float(v) for v in detections.xyxy[i]],
            "score": float(detections.scores[i]),
            "category": detections.labels[i],
        }
        if detections.masks[i] is not None:
            obj["mask"] = detections.masks[i]
        if detections.texts[i] is not None:
            obj["text"] = detections.texts[i]
        polygon = detections.polygons[i]
        if polygon is not None:
            obj["polygon"] = [[x, y] for x, y in polygon]
        points = detections.keypoints[i]
        if points is not None:
            obj["keypoints"] = [p._asdict() for p in points]
        if detections.region_choices[i]:
            obj["choices"] = [c._asdict() for c in detections.region_choices[i]]
        objects.append(obj)
    raw: dict[str, Any] = {"objects": objects}
    if detections.choices:
        raw["choices"] = [c._asdict() for c in detections.choices]
    return raw


def load_raw_file(path: str | Path) -> Detections:
    """Read one raw prediction file (``<image>_dinox_preannot.json`` or ``<image>.json``)."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionFileError(str(file), f"cannot read ({exc})") from exc
    except (ValueError, RecursionError) as exc:  # not JSON, a 5,000-digit number, deep nesting
        raise PredictionFileError(str(file), f"not valid JSON ({str(exc)[:200]})") from exc
    return detections_from_raw(data, str(file))


def save_raw_file(path: str | Path, detections: Detections) -> None:
    """Write a raw prediction file atomically (temp file + rename)."""
    atomic_write(path, json.dumps(detections_to_raw(detections)))


def _container(data: Any) -> Any:
    """The mapping that holds ``objects`` (the result may be wrapped as ``result``/``data.result``)."""
    node = data
    for key in ("data", "result"):
        if isinstance(node, Mapping) and "objects" not in node and isinstance(node.get(key), Mapping):
            node = node[key]
    return node


def _objects(data: Any, source: str) -> list[Any]:
    node = _container(data)
    if not isinstance(node, Mapping) or "objects" not in node:
        raise PredictionFileError(source, 'expected {"objects": [...]} (DINO-X result shape)')
    objects = node["objects"]
    if not isinstance(objects, list):
        raise PredictionFileError(source, f"'objects' must be a list, got {type(objects).__name__}")
    return objects


_LARGEST = 1e15  # a coordinate or score beyond this is not a measurement (nor a float64 pixel)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return -_LARGEST <= value <= _LARGEST  # a 400-digit int would overflow float()
    return math.isfinite(value) and abs(value) <= _LARGEST


def _polygon(value: Any, source: str, where: str) -> tuple[Point, ...] | None:
    if value is None:
        return None
    if not (
        isinstance(value, list)
        and len(value) >= 3
        and all(isinstance(p, list | tuple) and len(p) == 2 and all(_is_number(v) for v in p) for p in value)
    ):
        raise PredictionFileError(
            source, f"{where} must be [[x, y], ...] (3 points or more), got {str(value)[:80]}"
        )
    return tuple((float(x), float(y)) for x, y in value)


def _keypoints(value: Any, source: str, where: str) -> tuple[Keypoint, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise PredictionFileError(source, f"{where} must be a list, got {type(value).__name__}")
    points = []
    for j, point in enumerate(value):
        ok = isinstance(point, Mapping) and isinstance(point.get("label"), str) and point["label"].strip()
        ok = ok and all(_is_number(point.get(k)) for k in ("x", "y")) and _is_number(point.get("score", 1.0))
        if not ok:
            raise PredictionFileError(
                source,
                f"{where}[{j}] must be {{label, x, y, score}} with finite numbers, got {str(point)[:80]}",
            )
        points.append(
            Keypoint(
                point["label"].strip(), float(point["x"]), float(point["y"]), float(point.get("score", 1.0))
            )
        )
    return tuple(points)


def _choices(value: Any, source: str, where: str = "choices") -> tuple[Choice, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PredictionFileError(source, f"{where} must be a list, got {type(value).__name__}")
    choices = []
    for j, choice in enumerate(value):
        ok = isinstance(choice, Mapping) and isinstance(choice.get("label"), str) and choice["label"].strip()
        if not (ok and _is_number(choice.get("score", 1.0))):
            raise PredictionFileError(
                source, f"{where}[{j}] must be {{label, score}} with a finite score, got {str(choice)[:80]}"
            )
        choices.append(Choice(choice["label"].strip(), float(choice.get("score", 1.0))))
    return tuple(choices)
