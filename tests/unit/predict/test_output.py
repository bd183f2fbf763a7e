"""Model output made sane in one place: boxes ordered and clipped, what cannot be posted refused."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from prelabel.convert.masks import mask_to_coco
from prelabel.core.errors import DetectionError, PrelabelError
from prelabel.core.images import ImageInfo, read_image_info
from prelabel.predict.batches import infer_items
from prelabel.predict.models.base import ImageItem, ModelAdapter
from prelabel.predict.output import sane_detections
from prelabel.records import Choice, Detections, Keypoint, ModelSignature
from prelabel.store.cache import LocalCache
from tests.conftest import encode_image

# A 100 x 80 image, stored as it is displayed.
IMAGE = ImageInfo("a.jpg", "ab" * 32, 100, 80, 1, 100, 80, "JPEG", "RGB")


def _one(box: Sequence[float], score: float = 0.5, **extra: Any) -> Detections:
    return Detections(xyxy=[list(box)], scores=[score], labels=("car",), **extra)


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([10, 20, 30, 40], [10, 20, 30, 40]),  # as it is
        ([60, 50, 10, 10], [10, 10, 60, 50]),  # x1 > x2 and y1 > y2: the raw file of the issue
        ([30, 5, 10, 25], [10, 5, 30, 25]),  # x inverted only
        ([-20, -5, 50, 40], [0, 0, 50, 40]),  # past the top left: clipped
        ([90, 70, 150, 120], [90, 70, 100, 80]),  # past the bottom right: clipped
        ([150, 120, 90, 70], [90, 70, 100, 80]),  # inverted and past the edge
        ([-1e9, -1e9, 1e9, 1e9], [0, 0, 100, 80]),  # the whole image and far beyond
    ],
)
def test_boxes_are_ordered_and_clipped(box: list[float], expected: list[float]) -> None:
    assert sane_detections(_one(box), IMAGE).xyxy.tolist() == [expected]


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (_one([10, 10, 10, 40]), "#0 'car': box [10, 10, 10, 40] has no area"),  # no width
        (_one([10, 30, 50, 30]), "#0 'car': box [10, 30, 50, 30] has no area"),  # no height
        (_one([120, 10, 150, 40]), "#0 'car': box [120, 10, 150, 40] is outside the image"),  # right of it
        (_one([-50, -40, -10, -1]), "#0 'car': box [-50, -40, -10, -1] is outside the image"),  # above left
        (_one([100, 0, 120, 80]), "#0 'car': box [100, 0, 120, 80] is outside the image"),  # on its edge
        (_one([1, 2, float("nan"), 4]), "#0 'car': box [1, 2, nan, 4] is not finite"),
        (_one([1, 2, 3, float("inf")]), "#0 'car': box [1, 2, 3, inf] is not finite"),
        (_one([1, 2, 30, 40], 7.0), "#0 'car': score 7 is outside [0, 1]"),  # a logit
        (_one([1, 2, 30, 40], -5.0), "#0 'car': score -5 is outside [0, 1]"),
        (_one([1, 2, 30, 40], 87.0), "#0 'car': score 87 is outside [0, 1]"),  # a percentage
        (_one([1, 2, 30, 40], float("nan")), "#0 'car': score nan is not finite"),
        (
            _one([1, 2, 30, 40], keypoints=((Keypoint("nose", 5, 5, 1.5),),)),
            "#0 'car': keypoint 'nose' score 1.5 is outside [0, 1]",
        ),
        (
            _one([1, 2, 30, 40], keypoints=((Keypoint("nose", float("nan"), 5, 0.5),),)),
            "#0 'car': keypoint 'nose' is not finite",
        ),
        (
            _one([1, 2, 30, 40], region_choices=((Choice("red", -0.2),),)),
            "#0 'car': choice 'red' score -0.2 is outside [0, 1]",
        ),
        (
            _one([1, 2, 30, 40], polygons=(((1, 2), (3, float("nan")), (5, 6)),)),
            "#0 'car': a polygon vertex is not finite",
        ),
        (Detections(choices=(Choice("day", 2.0),)), "choice 'day' score 2 is outside [0, 1]"),
    ],
)
def test_what_cannot_be_posted_refuses_the_image(found: Detections, reason: str) -> None:
    with pytest.raises(DetectionError) as caught:
        sane_detections(found, IMAGE)
    assert str(caught.value) == f"a.jpg: detections refused: {reason}"


def test_every_refusal_is_named_up_to_five() -> None:
    found = Detections(xyxy=[[1, 1, 1, 1]] * 7, scores=[0.5] * 7, labels=tuple("abcdefg"))
    with pytest.raises(DetectionError, match=r"#4 'e': box \[1, 1, 1, 1\] has no area; and 2 more$"):
        sane_detections(found, IMAGE)


def test_scores_a_rounding_past_the_range_are_put_onto_it() -> None:
    found = Detections(
        xyxy=[[1, 2, 30, 40], [5, 5, 9, 9]],
        scores=[1 + 1e-9, -1e-9],
        labels=("a", "b"),
        keypoints=((Keypoint("nose", 5, 5, 1 + 1e-7),), None),
        choices=(Choice("day", -1e-8),),
        region_choices=((Choice("red", 1 + 1e-9),), ()),
    )
    sane = sane_detections(found, IMAGE)
    assert sane.scores.tolist() == [1.0, 0.0]
    assert sane.keypoints[0] == (Keypoint("nose", 5, 5, 1.0),)
    assert sane.choices == (Choice("day", 0.0),) and sane.region_choices[0] == (Choice("red", 1.0),)


def test_boxes_made_on_the_stored_grid_are_placed_before_they_are_clipped() -> None:
    """A phone photo stored 80 x 100 with EXIF orientation 6, displayed 100 x 80: masks of the
    stored size say the model saw the stored pixels; its box goes onto the displayed grid first
    (clipped on the stored grid, it would have been cut at the wrong edge)."""
    rotated = ImageInfo("p.jpg", "cd" * 32, 100, 80, 6, 80, 100, "JPEG", "RGB")
    mask = np.zeros((100, 80), np.uint8)
    mask[85:100, 0:20] = 1  # the stored image's bottom left
    found = Detections(xyxy=[[0, 85, 20, 100]], scores=[0.9], labels=("car",), masks=(mask_to_coco(mask),))
    sane = sane_detections(found, rotated)
    assert sane.xyxy.tolist() == [[0, 0, 15, 20]]  # turned clockwise, it is the displayed top left
    assert sane.masks[0] is not None and tuple(sane.masks[0]["size"]) == (80, 100)


def test_no_detections_are_fine() -> None:
    assert len(sane_detections(Detections(), IMAGE)) == 0


class _Odd(ModelAdapter):
    """A stand-in model whose output is inverted, past the edges, or (``refuse``) a logit."""

    name = "odd"
    task_types = ("detection",)

    def __init__(self, refuse: bool = False) -> None:
        self.refuse, self.calls = refuse, 0

    def signature(self) -> ModelSignature:
        return ModelSignature("odd")

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        self.calls += len(batch)
        score = 7.0 if self.refuse else 0.9
        return [
            Detections(xyxy=[[60, 50, 10, 10], [-5, 20, 500, 30]], scores=[score, 0.4], labels=("a", "b"))
            for _ in batch
        ]


def _item(tmp_path: Path) -> ImageItem:
    path = tmp_path / "a.png"
    path.write_bytes(encode_image(Image.new("RGB", (100, 80)), "PNG"))
    data = path.read_bytes()
    return ImageItem(str(path), data, read_image_info(data, "a.png"))


def test_the_pipeline_caches_and_hands_on_sane_boxes(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "cache")
    result = infer_items([_item(tmp_path)], _Odd(), cache)  # type: ignore[abstract]
    (record,) = result.records
    assert record.detections.xyxy.tolist() == [[10, 10, 60, 50], [0, 20, 100, 30]]
    cached = cache.get(record.image.sha256, ModelSignature("odd"))
    assert cached is not None and cached.xyxy.tolist() == record.detections.xyxy.tolist()


def test_an_entry_cached_before_is_made_sane_when_read(tmp_path: Path) -> None:
    item, cache = _item(tmp_path), LocalCache(tmp_path / "cache")
    inverted = Detections(xyxy=[[60, 50, 10, 10]], scores=[0.9], labels=("a",))
    cache.put(item.info.sha256, ModelSignature("odd"), inverted)  # as an earlier version cached it
    model = _Odd()
    (record,) = infer_items([item], model, cache).records  # type: ignore[abstract]
    assert model.calls == 0 and record.detections.xyxy.tolist() == [[10, 10, 60, 50]]
    cache.put(item.info.sha256, ModelSignature("odd"), inverted.replace(scores=[7.0]))
    again = infer_items([item], model, cache)  # type: ignore[abstract]
    assert model.calls == 1 and again.inferred == 1  # refused when read: a miss, asked again


def test_a_refused_output_is_the_images_error_row_and_is_not_cached(tmp_path: Path) -> None:
    item, cache = _item(tmp_path), LocalCache(tmp_path / "cache")
    model = _Odd(refuse=True)
    result = infer_items([item], model, cache)  # type: ignore[abstract]
    assert result.records == [] and [(e.file, e.stage) for e in result.errors] == [(item.uri, "infer")]
    assert result.errors[0].error == "a.png: detections refused: #0 'a': score 7 is outside [0, 1]"
    assert cache.get(item.info.sha256, ModelSignature("odd")) is None


# -- the report never fails a run ----------------------------------------------------------------
