"""SigLIP zero-shot choices from a tiny random-weight checkpoint (offline tokenizer)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prelabel.core.errors import SettingsError
from prelabel.core.images import read_image_info
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.batches import project_prompt
from prelabel.predict.models import ImageItem, create_model
from prelabel.records import Choice, Detections
from tests.conftest import encode_image, random_image_item

CHOICES = "car,dog,cat,tree"


def _scores(found: Detections | object) -> dict[str, float]:
    assert isinstance(found, Detections)
    return {c.label: c.score for c in found.choices}


def test_batched_equals_one_at_a_time(tiny_siglip: Path) -> None:
    items = [random_image_item(i, (80, 60) if i % 2 else (64, 64)) for i in range(5)]
    model = create_model(
        "siglip",
        checkpoint=str(tiny_siglip),
        choices=CHOICES,
        threshold=0.0,
        top_k=4,
        batch_size=2,
        device="cpu",
    )
    together = model.predict(items)
    alone = [model.predict([item])[0] for item in items]
    for a, b in zip(together, alone, strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections) and len(a) == 0
        assert [c.label for c in a.choices] == [c.label for c in b.choices]
        np.testing.assert_allclose([c.score for c in a.choices], [c.score for c in b.choices], atol=1e-5)
    assert len({tuple(_scores(found).values()) for found in together}) == len(items)  # the image matters


def test_sigmoid_scores_threshold_and_top_k(tiny_siglip: Path) -> None:
    item = random_image_item(3, (64, 48))
    every = create_model(
        "siglip", checkpoint=str(tiny_siglip), choices=CHOICES, threshold=0.0, top_k=10, device="cpu"
    )
    (found,) = every.predict([item])
    scores = _scores(found)
    assert list(scores) == sorted(scores, key=lambda label: -scores[label]) and set(scores) == set(
        CHOICES.split(",")
    )
    assert abs(sum(scores.values()) - 1) > 0.05  # a sigmoid per choice, not a softmax over them
    ranked = sorted(scores.values(), reverse=True)
    middle = (ranked[1] + ranked[2]) / 2
    (kept,) = create_model(
        "siglip", checkpoint=str(tiny_siglip), choices=CHOICES, threshold=middle, top_k=10, device="cpu"
    ).predict([item])
    assert list(_scores(kept)) == list(scores)[:2]
    (best,) = create_model(
        "siglip", checkpoint=str(tiny_siglip), choices=CHOICES, threshold=0.0, device="cpu"
    ).predict([item])
    assert list(_scores(best)) == list(scores)[:1]
    (none,) = create_model(
        "siglip", checkpoint=str(tiny_siglip), choices=CHOICES, threshold=ranked[0] + 1e-3, device="cpu"
    ).predict([item])
    assert isinstance(none, Detections) and none.choices == ()


def test_signature_and_clear_errors(tiny_siglip: Path) -> None:
    base = {"checkpoint": str(tiny_siglip), "choices": CHOICES}
    key = create_model("siglip", **base).signature().key
    for change in ({"choices": "car,dog"}, {"template": "{}"}, {"threshold": 0.3}, {"top_k": 2}):
        assert create_model("siglip", **{**base, **change}).signature().key != key
    assert create_model("siglip").signature().revision == "google/siglip-base-patch16-224@main"
    with pytest.raises(SettingsError, match="choices=indoor,outdoor"):
        create_model("siglip", checkpoint=str(tiny_siglip)).predict([random_image_item(0, (8, 8))])
    with pytest.raises(SettingsError, match="needs \\{\\}"):
        create_model("siglip", template="a photo")
    with pytest.raises(SettingsError, match="top_k must be 1 or more, got 0"):
        create_model("siglip", top_k=0)


def test_bad_image_is_that_images_error(tiny_siglip: Path) -> None:
    bad = ImageItem(
        uri="bad.png", data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, info=random_image_item(0, (8, 8)).info
    )
    results = create_model("siglip", checkpoint=str(tiny_siglip), choices=CHOICES, device="cpu").predict(
        [bad, random_image_item(2, (32, 32))]
    )
    assert not isinstance(results[0], Detections) and "bad.png" in str(results[0])
    assert isinstance(results[1], Detections) and len(results[1].choices) == 1


def test_choices_and_classes_from_the_project_reach_their_parts() -> None:
    config = parse_label_config(
        '<View><Image name="image" value="$image"/>'
        '<RectangleLabels name="label" toName="image"><Label value="civilian vehicle"/></RectangleLabels>'
        '<Choices name="scene" toName="image"><Choice value="indoor"/><Choice value="outdoor"/></Choices>'
        '<Choices name="kind" toName="image" perRegion="true"><Choice value="parked"/></Choices></View>'
    )
    assert config.image_choices == ("indoor", "outdoor")
    mapping = LabelMap({"car": "civilian vehicle"})
    labels, choices = config.region_labels, config.image_choices
    assert project_prompt("siglip", {}, labels, mapping, choices) == {"choices": ["indoor", "outdoor"]}
    assert project_prompt(
        "grounded-sam2+vitpose+siglip", {"siglip.choices": "day"}, labels, mapping, choices
    ) == {"grounded-sam2.classes": ["car"], "siglip.choices": "day"}
    assert project_prompt("detr+siglip", {}, labels, mapping, ()) == {}


def _item_of(image: Image.Image, name: str) -> ImageItem:
    data = encode_image(image, "PNG")
    return ImageItem(uri=name, data=data, info=read_image_info(data, name))


def test_region_choices_classify_each_detections_padded_crop(tiny_siglip: Path) -> None:
    item = random_image_item(5, (80, 60))
    boxes = Detections(
        xyxy=[[10, 10, 50, 40], [0, 0, 80, 60], [70, 50, 200, 90], [100, 100, 120, 120]],
        scores=[0.9, 0.8, 0.7, 0.6],
        labels=("car", "car", "dog", "dog"),
        choices=(Choice("day", 0.4),),
        region_choices=((), (), (), (Choice("kept", 1.0),)),
    )
    model = create_model(
        "siglip",
        checkpoint=str(tiny_siglip),
        region_choices=CHOICES,
        threshold=0.0,
        top_k=2,
        batch_size=3,
        device="cpu",
    )
    (found,) = model.refine([item], [boxes])
    assert isinstance(found, Detections)
    np.testing.assert_array_equal(found.xyxy, boxes.xyxy)
    assert found.choices == boxes.choices  # no image-level options: the image's choices stay
    first, whole, edge, outside = found.region_choices
    assert outside == (Choice("kept", 1.0),)  # off the image: no crop, left as it was
    for classes in (first, whole, edge):
        assert len(classes) == 2 and {c.label for c in classes} <= set(CHOICES.split(","))
        assert classes[0].score >= classes[1].score and all(0 <= c.score <= 1 for c in classes)
    # the first box grown by 10% of its size on each side (4 and 3 px), the second clipped to
    # the image, the third clipped then grown: each scores as that crop would on its own
    with Image.open(io.BytesIO(item.data)) as image:
        crops = [image.crop((6, 7, 54, 43)), image.crop((0, 0, 80, 60)), image.crop((69, 49, 80, 60))]
    every = create_model(
        "siglip", checkpoint=str(tiny_siglip), choices=CHOICES, threshold=0.0, top_k=2, device="cpu"
    )
    alone = every.predict([_item_of(crop, f"crop{k}.png") for k, crop in enumerate(crops)])
    for classes, single in zip((first, whole, edge), alone, strict=True):
        assert isinstance(single, Detections)
        assert [c.label for c in classes] == [c.label for c in single.choices]
        np.testing.assert_allclose([c.score for c in classes], [c.score for c in single.choices], atol=1e-5)
    assert first != whole  # the crop matters


def test_region_choices_option_signature_and_errors(tiny_siglip: Path) -> None:
    base = {"checkpoint": str(tiny_siglip), "choices": CHOICES}
    plain = create_model("siglip", **base).signature()
    assert "region_choices" not in plain.params  # caches made before the option stay valid
    assert create_model("siglip", **base, region_choices="car,dog").signature().key != plain.key
    regions_only = create_model("siglip", checkpoint=str(tiny_siglip), region_choices="car,dog", device="cpu")
    with pytest.raises(SettingsError, match="region_choices=parked,moving classifies each detection"):
        regions_only.predict([random_image_item(0, (8, 8))])  # alone: no detections to classify
    (none,) = regions_only.refine([random_image_item(0, (8, 8))], [Detections()])
    assert isinstance(none, Detections) and len(none) == 0 and none.choices == ()


def test_region_choices_from_the_project_reach_a_chained_siglip_only() -> None:
    mapping = LabelMap({"parked car": "parked"})
    wanted = project_prompt("detr+siglip", {}, ("car",), mapping, ("day",), ("parked", "moving"))
    assert wanted == {"siglip.choices": ["day"], "siglip.region_choices": ["parked car", "moving"]}
    assert project_prompt("siglip", {}, (), mapping, ("day",), ("parked",)) == {"choices": ["day"]}
    given = {"siglip.region_choices": "red,blue"}
    assert project_prompt("detr+siglip", given, (), mapping, (), ("parked",)) == given
