"""SAM 2 prompted by clicks and boxes (a tiny random-weight checkpoint, loaded the way users load
one): masks on the displayed image, features computed once per image, and find-all with SAM 2 alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prelabel.convert.masks import coco_size, coco_to_mask
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.models.prompted import Prompt, Sam2Prompter, Segment
from prelabel.records import Detections
from prelabel.serve.findall import DetectionFinder, box_iou
from prelabel.serve.interactive import FeatureCache
from tests.conftest import random_image_item

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def prompter(tiny_sam2: Path) -> Sam2Prompter:
    return Sam2Prompter(str(tiny_sam2), device="cpu", dtype="float32")


@pytest.mark.parametrize(
    "prompt",
    [
        Prompt(np.array([[30.0, 20.0]]), np.array([1])),  # one click: the best of three candidates
        Prompt(np.array([[30.0, 20.0], [5.0, 5.0]]), np.array([1, 0])),  # a click on, one off the object
        Prompt.of_box([10.0, 8.0, 50.0, 40.0]),  # a box
        Prompt(np.array([[30.0, 20.0]]), np.array([1]), np.array([10.0, 8.0, 50.0, 40.0])),  # both
    ],
)
def test_a_prompt_gives_one_mask_on_the_displayed_image(prompter: Sam2Prompter, prompt: Prompt) -> None:
    item = random_image_item(1, (64, 48))
    segment = prompter.segment(prompter.embed(item.load()), prompt)
    assert np.isfinite(segment.score)
    if segment.mask is not None:  # random weights: a mask may have no pixel, never a wrong size
        assert coco_size(segment.mask) == (48, 64)
        assert coco_to_mask(segment.mask).any()


def test_features_of_an_image_are_computed_once(prompter: Sam2Prompter) -> None:
    embedded: list[str] = []
    cache = FeatureCache(size=2)
    items = [random_image_item(seed, (64, 48)) for seed in (1, 2, 3)]

    def features(number: int) -> tuple[object, bool]:
        item = items[number]

        def make() -> object:
            embedded.append(item.uri)
            return prompter.embed(item.load())

        return cache.get(item.info.sha256, make)

    first, kept = features(0)
    again, kept_again = features(0)
    assert (kept, kept_again) == (False, True) and again is first
    features(1)
    features(2)  # the least recently used (image 0) goes
    features(0)
    assert embedded == ["1.png", "2.png", "3.png", "1.png"]
    same = prompter.segment(first, Prompt(np.array([[30.0, 20.0]]), np.array([1])))
    repeat = prompter.segment(first, Prompt(np.array([[30.0, 20.0]]), np.array([1])))
    assert same == repeat  # features reused give the same mask


def test_features_of_another_segmenter_are_refused(prompter: Sam2Prompter) -> None:
    from prelabel.core.errors import PrelabelError

    with pytest.raises(PrelabelError, match="another segmenter"):
        prompter.segment(object(), Prompt.of_box([0, 0, 5, 5]))


def test_a_folder_that_is_not_sam2_is_one_line(tmp_path: Path, tiny_detr: Path) -> None:
    from prelabel.core.errors import SettingsError

    with pytest.raises(SettingsError, match="not a SAM 2 checkpoint"):
        Sam2Prompter(str(tiny_detr), device="cpu").load()


@pytest.mark.parametrize(
    ("box", "boxes", "expected"),
    [
        ([0, 0, 10, 10], [[0, 0, 10, 10]], [1.0]),  # the same box
        ([0, 0, 10, 10], [[5, 0, 15, 10]], [1 / 3]),  # half over
        ([0, 0, 10, 10], [[20, 20, 30, 30]], [0.0]),  # apart
        ([0, 0, 0, 0], [[0, 0, 0, 0]], [0.0]),  # no area at all: no union
        ([0, 0, 10, 10], np.zeros((0, 4)), []),  # nothing to compare
    ],
)
def test_box_iou(box: list[float], boxes: list[list[float]], expected: list[float]) -> None:
    assert box_iou(np.asarray(box, float), np.asarray(boxes, float)).tolist() == pytest.approx(expected)


def test_find_all_with_sam2_alone_keeps_the_labels_other_instances_and_masks_them() -> None:
    item = random_image_item(4, (64, 48))
    found = Detections(
        xyxy=np.array([[1, 1, 11, 11], [30, 5, 40, 15], [40, 30, 60, 45], [2, 1, 12, 11]], float),
        scores=np.array([0.9, 0.8, 0.7, 0.6]),
        labels=("car", "cars", "person", "car"),
        masks=(None, None, {"size": [48, 64], "counts": "0"}, None),
    )
    asked: list[list[float]] = []

    def segment(_: object, prompt: Prompt) -> Segment:
        assert prompt.box is not None and len(prompt.points) == 0
        asked.append(prompt.box.tolist())
        return Segment({"size": [48, 64], "counts": f"box{len(asked)}"}, 0.5)

    plurals = LabelMap({"cars": "car"})
    done = DetectionFinder(lambda _: found, segment, plurals).find(item, np.array([0.0, 0, 10, 10]), "car")
    # the drawn box first, then the other car (the label map says "cars" is "car"); the person and
    # the detection that is the drawn car again (IoU 0.68) are left out
    assert done.xyxy.tolist() == [[0, 0, 10, 10], [30, 5, 40, 15]]
    assert done.labels == ("car", "car")
    assert asked == [[0, 0, 10, 10], [30, 5, 40, 15]]
    assert [m["counts"] for m in done.masks if m] == ["box1", "box2"]
    assert done.scores.tolist() == [0.5, 0.8]


def test_find_all_with_sam3_prompts_the_drawn_box_as_an_exemplar(
    tiny_sam3: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from prelabel.predict.models import create_model
    from prelabel.serve.findall import ExemplarFinder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    options = {
        "checkpoint": str(tiny_sam3),
        "classes": ["car", "person"],
        "threshold": 0.0,
        "merge_iou": 1.01,
        "device": "cpu",
    }
    item = random_image_item(7, (64, 48))
    box = np.array([4.0, 6.0, 30.0, 40.0])
    finder = ExemplarFinder(create_model("sam3", **options), threading.Lock())
    found = finder.find(item, box, "car")
    assert getattr(finder.adapter, "exemplars", "?") is None  # the served adapter is as it was
    # the same as a sam3 made with that exemplar, its other label's instances left out
    (expected,) = create_model("sam3", exemplars={item.uri: [["car", *box.tolist()]]}, **options).predict(
        [item]
    )
    assert isinstance(expected, Detections) and len(found) > 0
    cars = expected[np.array([label == "car" for label in expected.labels])]
    np.testing.assert_allclose(found.xyxy, cars.xyxy, rtol=1e-5)
    assert set(found.labels) == {"car"}
    (plain,) = create_model("sam3", **options).predict([item])
    assert isinstance(plain, Detections)
    unprompted = plain[np.array([label == "car" for label in plain.labels])].scores
    assert len(unprompted) != len(found) or not np.allclose(unprompted, found.scores)  # the box prompted it


def test_find_all_needs_a_model_that_takes_exemplars(tiny_detr: Path) -> None:
    import threading

    from prelabel.core.errors import SettingsError
    from prelabel.predict.models import create_model
    from prelabel.serve.findall import ExemplarFinder

    with pytest.raises(SettingsError, match="find-all needs sam3"):
        ExemplarFinder(create_model("detr", checkpoint=str(tiny_detr)), threading.Lock())
