"""ViTPose keypoints on person boxes, from a tiny random-weight checkpoint."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from prelabel.core.errors import SettingsError
from prelabel.core.images import read_image_info
from prelabel.predict.models import ImageItem, create_model
from prelabel.predict.models.vitpose import VitPose
from prelabel.records import COCO_KEYPOINTS, Detections
from tests.conftest import encode_image, random_image_item


def _people(width: int, height: int) -> Detections:
    """Two persons (3:4 boxes, ViTPose's aspect) and a car, on a ``width`` x ``height`` image."""
    return Detections(
        xyxy=[[4, 6, 28, 38], [width - 34, height - 42, width - 4, height - 2], [0, 0, 20, 20]],
        scores=[0.9, 0.8, 0.7],
        labels=("person", "Person", "car"),
    )


def _near(found: Detections, j: int, margin: float = 0.4) -> bool:
    """Every keypoint of detection ``j`` within its box grown by ``margin`` of its size (the crop
    ViTPose sees is the box enlarged by 1.25)."""
    x1, y1, x2, y2 = found.xyxy[j]
    grow_x, grow_y = margin * (x2 - x1), margin * (y2 - y1)
    points = found.keypoints[j] or ()
    return all(x1 - grow_x <= p.x <= x2 + grow_x and y1 - grow_y <= p.y <= y2 + grow_y for p in points)


def test_batched_equals_one_at_a_time_and_only_persons_get_keypoints(tiny_vitpose: Path) -> None:
    items = [random_image_item(i, (80, 60) if i % 2 else (64, 72)) for i in range(4)]
    previous = [_people(item.info.width, item.info.height) for item in items]
    # no threshold (a random model's heatmap peaks can be negative)
    model = VitPose(checkpoint=str(tiny_vitpose), threshold=-1e9, batch_size=3, device="cpu")
    together = model.refine(items, previous)
    outside = model.drain_counts().get("keypoints outside the image", 0)
    alone = [model.refine([item], [before])[0] for item, before in zip(items, previous, strict=True)]
    assert model.drain_counts().get("keypoints outside the image", 0) == outside
    for a, b, before in zip(together, alone, previous, strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections)
        np.testing.assert_array_equal(a.xyxy, before.xyxy)
        assert a.labels == before.labels and a.keypoints[2] is None  # the car: unchanged
        for j in (0, 1):
            points_a, points_b = a.keypoints[j] or (), b.keypoints[j] or ()
            assert [p.label for p in points_a] == [p.label for p in points_b]
            np.testing.assert_allclose([p[1:] for p in points_a], [p[1:] for p in points_b], atol=1e-3)
            assert {p.label for p in points_a} <= set(COCO_KEYPOINTS) and _near(a, j)
    kept = sum(len(found.keypoints[j] or ()) for found in together for j in (0, 1))
    assert kept + outside == len(items) * 2 * 17  # every keypoint, or counted as outside
    assert kept > 0


def test_threshold_and_names(tiny_vitpose: Path) -> None:
    item = random_image_item(5, (64, 72))
    (every,) = VitPose(checkpoint=str(tiny_vitpose), threshold=-1e9, device="cpu").refine(
        [item], [_people(64, 72)]
    )
    assert isinstance(every, Detections)
    scores = sorted(p.score for p in every.keypoints[0] or ())
    middle = scores[len(scores) // 2]
    strict = VitPose(checkpoint=str(tiny_vitpose), threshold=middle, keypoint_names="model", device="cpu")
    (kept,) = strict.refine([item], [_people(64, 72)])
    assert isinstance(kept, Detections)
    points = kept.keypoints[0] or ()
    assert points and all(p.score >= middle for p in points) and len(points) < len(scores)
    assert all(p.label.startswith("LABEL_") for p in points)  # the checkpoint's id2label
    with pytest.raises(SettingsError, match="predicts 17 keypoints, not 2"):
        VitPose(checkpoint=str(tiny_vitpose), keypoint_names="head,tail").refine([item], [_people(64, 72)])


def test_keypoints_on_the_displayed_grid_of_an_exif_rotated_image(tiny_vitpose: Path) -> None:
    """A photo stored sideways with EXIF orientation 6 gives the keypoints of the same pixels
    stored upright: boxes and keypoints share the displayed grid."""
    rng = np.random.default_rng(7)
    stored = Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8))  # 90 wide, 60 high
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = encode_image(stored, "JPEG", quality=95, exif=exif.tobytes())
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(rotated)))
    upright = encode_image(shown, "PNG")
    items = [
        ImageItem(uri=name, data=data, info=read_image_info(data, name))
        for name, data in (("rotated.jpg", rotated), ("upright.png", upright))
    ]
    assert (items[0].info.width, items[0].info.height) == (60, 90) == shown.size
    people = _people(60, 90)
    model = VitPose(checkpoint=str(tiny_vitpose), threshold=0.0, device="cpu")
    a, b = model.refine(items, [people, people])
    assert isinstance(a, Detections) and isinstance(b, Detections)
    assert a.keypoints[0] and [p.label for p in a.keypoints[0]] == [p.label for p in b.keypoints[0] or ()]
    np.testing.assert_allclose(
        [p[1:] for p in a.keypoints[0]], [p[1:] for p in b.keypoints[0] or ()], atol=1e-3
    )
    assert _near(a, 0) and _near(a, 1)


def test_alone_is_a_clear_error_and_the_signature_follows_options(tiny_vitpose: Path) -> None:
    with pytest.raises(SettingsError, match=r"chain it after a detector, e.g. --model detr\+vitpose"):
        create_model("vitpose")
    base = VitPose(checkpoint=str(tiny_vitpose)).signature().key
    for change in ({"threshold": 0.5}, {"person_labels": "human"}, {"keypoint_names": "model"}):
        assert VitPose(checkpoint=str(tiny_vitpose), **change).signature().key != base  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="person_labels"):
        VitPose(person_labels="")


def test_person_boxes_without_area_on_the_image_get_no_keypoints_and_the_batch_goes_on(
    tiny_vitpose: Path,
) -> None:
    """A detector's (or a raw file's) degenerate person boxes: the image processor cannot warp
    them (a zero-size box raised for the whole batch); they pass through, counted."""
    item = random_image_item(0, (80, 60))
    boxes = [
        [10, 10, 10, 10],  # a point
        [10, 10, 10, 40],  # no width
        [200, 200, 260, 280],  # off the image
        [30, 50, 10, 10],  # corners given in reverse: the box it encloses
        [4, 6, 28, 38],  # a person
    ]
    before = Detections(xyxy=boxes, scores=[0.9] * 5, labels=("person",) * 5)
    model = VitPose(checkpoint=str(tiny_vitpose), threshold=-1e9, device="cpu")
    (found,) = model.refine([item], [before])
    assert isinstance(found, Detections)
    assert found.keypoints[:3] == (None, None, None)
    assert found.keypoints[3] and found.keypoints[4]
    counts = model.drain_counts()
    assert counts["person boxes zero area: no keypoints"] == 2
    assert counts["person boxes outside image: no keypoints"] == 1


def test_keypoints_not_finite_are_dropped_and_counted_as_such(tiny_vitpose: Path) -> None:
    """A model's NaN heatmap (fp16 overflow, say): its peaks have no place and a NaN score
    (which ``score < threshold`` keeps); they were counted as outside the image."""
    import torch

    model = VitPose(checkpoint=str(tiny_vitpose), threshold=0.0, device="cpu")
    network = model._load()[0]
    with torch.no_grad():
        for parameter in network.head.parameters():
            parameter.fill_(float("nan"))
    (found,) = model.refine([random_image_item(0, (80, 60))], [_people(80, 60)])
    assert isinstance(found, Detections)
    assert found.keypoints[:2] == ((), ())
    assert model.drain_counts() == {"keypoints not finite": 2 * 17}
