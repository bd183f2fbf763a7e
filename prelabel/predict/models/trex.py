"""T-Rex 2 visual prompting (``--model trex``) on the DINO-X V2 task protocol.

The request body is the one IDEA-Research's own V2 client sends: github.com/IDEA-Research/T-Rex,
``trex/model_wrapper.py`` (``TRex2APIWrapper.convert_visual_prompt`` and ``call_api``) with
its example ``demo_examples/generic_inference.py``::

    POST /v2/task/trex/detection
    {"model": "T-Rex-2.0", "image": "<data URI>", "targets": ["bbox"],
     "prompt": {"type": "visual_images", "visual_images": [
        {"image": "<data URI>", "interactions": [
            {"type": "rect", "category_id": 1, "rect": [x1, y1, x2, y2]}, ...]}, ...]}}

answered like DINO-X (create, then poll ``/v2/task_status/<uuid>``) with objects that name
their ``category_id`` (the wrapper's ``postprocess`` reads ``bbox``, ``score``,
``category_id``). That body carries no threshold, so ``bbox_threshold`` is applied here.

Options: ``prompt_images``, the reference images (a list of paths, or one string of
comma-separated paths); ``prompt_boxes``, per label the boxes that show it,
``{"label": [[image index, x1, y1, x2, y2], ...]}`` in pixels of the reference image as
displayed (EXIF applied), the index counting from 0 in ``prompt_images``. On the command
line: ``--model-option prompt_images=ref.jpg --model-option
'prompt_boxes={"car": [[0, 10, 20, 110, 80]]}'``. Labels get category ids 1, 2, ... in
the order given. Reference images are sent downscaled to ``max_side`` like the target
(the SDK's limit for this endpoint is 1333), their boxes scaled alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prelabel.core.errors import DinoxError, ImageError, PrelabelError, SettingsError
from prelabel.core.images import load_image, sha256_bytes
from prelabel.predict.models.base import ImageItem
from prelabel.predict.models.dinox import DinoX
from prelabel.predict.models.registry import register
from prelabel.records import Detections, detections_from_raw

__all__ = ["TRex"]

PromptBoxes = dict[str, list[tuple[int, float, float, float, float]]]


@register("trex")
class TRex(DinoX):
    """T-Rex 2: finds what boxes on reference images show (visual prompts, boxes only)."""

    task_types = ("detection",)

    def __init__(
        self,
        prompt_images: Sequence[str] | str | None = None,
        prompt_boxes: Mapping[str, Any] | None = None,
        max_side: int = 1333,
        **options: Any,
    ) -> None:
        if options.get("classes"):
            raise SettingsError("trex takes visual prompts (prompt_images, prompt_boxes), not classes")
        options.setdefault("targets", ("bbox",))
        super().__init__(**{**options, "endpoint": "trex"}, max_side=max_side)
        self.prompt_images = _image_list(prompt_images)
        self.prompt_boxes = _box_map(prompt_boxes, len(self.prompt_images))
        self.labels = list(self.prompt_boxes)
        self._references: list[dict[str, Any]] | None = None
        self._hashes = [_file_hash(path) for path in self.prompt_images]

    def _prompt(self) -> dict[str, Any]:
        """The prompt as the signature records it: reference files by content, and boxes."""
        return {"type": "visual_images", "images": self._hashes, "boxes": self.prompt_boxes}

    def _body(self, image: str) -> dict[str, Any]:
        prompt = {"type": "visual_images", "visual_images": self._visual_images()}
        return {"model": self.model_name, "image": image, "targets": self.targets, "prompt": prompt}

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        """The reference images are read first: one that cannot be read, or a box outside it,
        stops the batch with one error (not an error row per image, each reading it again)."""
        self._visual_images()
        return super().predict(batch)

    def _visual_images(self) -> list[dict[str, Any]]:
        """Each reference image as a data URI with its boxes (scaled like the image)."""
        if self._references is None:
            references = []
            for index, path in enumerate(self.prompt_images):
                try:
                    rgb = load_image(path).rgb
                except ImageError as exc:
                    raise SettingsError(f"trex prompt image {path}: {exc}") from exc
                _check_inside(self.prompt_boxes, index, path, rgb.size)
                payload, scale = self._image_payload(rgb)
                interactions = [
                    {"type": "rect", "category_id": number, "rect": [v * scale for v in box[1:]]}
                    for number, label in enumerate(self.labels, start=1)
                    for box in self.prompt_boxes[label]
                    if box[0] == index
                ]
                references.append({"image": payload, "interactions": interactions})
            self._references = references
        return self._references

    def _detections(self, result: Any, uri: str) -> Detections:
        """Objects named by ``category_id`` -> labels; below ``bbox_threshold`` left out."""
        objects = result.get("objects") if isinstance(result, Mapping) else None
        if not isinstance(objects, list):
            raise DinoxError(f"{uri}: T-Rex answer without an objects list: {str(result)[:100]}")
        named = []
        for obj in objects:
            number = obj.get("category_id") if isinstance(obj, Mapping) else None
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= len(self.labels):
                raise DinoxError(
                    f"{uri}: T-Rex object with category_id {number!r}; sent 1..{len(self.labels)}"
                )
            named.append({**obj, "category": self.labels[number - 1]})
        found = detections_from_raw({"objects": named}, uri)
        return found[np.asarray(found.scores >= self.bbox_threshold)]


def _check_inside(boxes: PromptBoxes, index: int, path: str, size: tuple[int, int]) -> None:
    """Every box drawn on reference ``index`` lies on it (pixels of the displayed image)."""
    width, height = size
    for label, rows in boxes.items():
        for row in rows:
            image, x1, y1, x2, y2 = row
            if image == index and (min(x1, y1) < 0 or x2 > width or y2 > height):
                raise SettingsError(
                    f"trex prompt_boxes[{label!r}]: {list(row)} reaches outside prompt image {path} "
                    f"({width}x{height} as displayed, EXIF orientation applied)"
                )


def _image_list(value: Sequence[str] | str | None) -> list[str]:
    paths = (
        [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else list(value or [])
    )
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise SettingsError(
            "trex needs prompt_images: reference image paths, e.g. --model-option prompt_images=ref.jpg"
        )
    for path in paths:
        if not Path(path).is_file():
            raise SettingsError(f"trex prompt image {path}: no such file")
    return paths


def _file_hash(path: str) -> str:
    try:
        return sha256_bytes(Path(path).read_bytes())
    except OSError as exc:
        raise SettingsError(f"trex prompt image {path}: cannot read ({exc})") from exc


def _box_map(value: Mapping[str, Any] | None, images: int) -> PromptBoxes:
    example = '{"car": [[0, 10, 20, 110, 80]]}'
    if isinstance(value, str):  # the command line's value when it does not parse as JSON
        raise SettingsError(f"trex prompt_boxes is not a JSON object: {value[:80]!r}; e.g. {example}")
    if not isinstance(value, Mapping) or not value:
        raise SettingsError(
            f"trex needs prompt_boxes: per label [[image index, x1, y1, x2, y2], ...], e.g. {example}"
        )
    boxes: PromptBoxes = {}
    for label, rows in value.items():
        if not isinstance(label, str) or not label.strip() or not isinstance(rows, list) or not rows:
            raise SettingsError(
                f"trex prompt_boxes[{label!r}]: expected a non-empty list of boxes, e.g. {example}"
            )
        for row in rows:
            ok = (
                isinstance(row, list)
                and len(row) == 5
                and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in row
                )
            )
            if not ok or row[0] != int(row[0]) or not 0 <= row[0] < images:
                raise SettingsError(
                    f"trex prompt_boxes[{label!r}]: {row!r} is not "
                    f"[image index 0..{images - 1}, x1, y1, x2, y2]"
                )
            if not (row[3] > row[1] and row[4] > row[2]):
                raise SettingsError(
                    f"trex prompt_boxes[{label!r}]: {row!r} has no area (need x2 > x1, y2 > y1)"
                )
            boxes.setdefault(label.strip(), []).append((int(row[0]), *(float(v) for v in row[1:])))  # type: ignore[arg-type]
    unused = set(range(images)) - {box[0] for rows in boxes.values() for box in rows}
    if unused:
        raise SettingsError(f"trex prompt image {sorted(unused)[0]} has no box in prompt_boxes")
    return boxes
