"""DETR from a tiny random-weight config, saved and loaded through the user's path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from prelabel.predict.models import ImageItem, create_model
from prelabel.records import Detections
from tests.conftest import TINY_DETR_LABELS as LABELS
from tests.conftest import random_image_item
from tests.support.random_models import DETR_SAYS_LOGIT


def test_batched_equals_one_at_a_time(tiny_detr: Path) -> None:
    items = [random_image_item(i, (80, 60) if i % 2 else (64, 64)) for i in range(6)]
    model = create_model("detr", checkpoint=str(tiny_detr), threshold=0.0, batch_size=4, device="cpu")
    together = model.predict(items)
    alone = [model.predict([item])[0] for item in items]
    for a, b, item in zip(together, alone, items, strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections)
        assert len(a) == 12
        np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        assert a.labels == b.labels and set(a.labels) <= set(LABELS.values())
        width, height = item.info.width, item.info.height
        assert (a.xyxy[:, [0, 2]] >= -1e-3).all() and (a.xyxy[:, [0, 2]] <= width + 1e-3).all()
        assert (a.xyxy[:, [1, 3]] <= height + 1e-3).all()


def test_threshold_and_signature(detr_says_dog: Path) -> None:
    # every query scores exp(logit) / (exp(logit) + 3) for "dog": 0 for car, person, no object
    known = math.exp(DETR_SAYS_LOGIT) / (math.exp(DETR_SAYS_LOGIT) + 3)
    assert 0.99 < known < 0.995
    strict = create_model("detr", checkpoint=str(detr_says_dog), threshold=0.99, device="cpu")
    (found,) = strict.predict([random_image_item(1, (64, 48))])
    assert isinstance(found, Detections) and len(found) == 12 and found.labels == ("dog",) * 12
    assert (found.scores > 0.99).all()
    np.testing.assert_allclose(found.scores, known, rtol=1e-5)
    stricter = create_model("detr", checkpoint=str(detr_says_dog), threshold=0.995, device="cpu")
    (none,) = stricter.predict([random_image_item(1, (64, 48))])
    assert isinstance(none, Detections) and len(none) == 0
    assert strict.signature().params == {"threshold": 0.99}
    assert create_model("detr").signature().revision == "facebook/detr-resnet-50@main"


def test_bad_image_is_that_images_error(tiny_detr: Path) -> None:
    bad = ImageItem(
        uri="bad.png", data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, info=random_image_item(0, (8, 8)).info
    )
    results = create_model("detr", checkpoint=str(tiny_detr), device="cpu").predict(
        [bad, random_image_item(2, (32, 32))]
    )
    assert not isinstance(results[0], Detections) and "bad.png" in str(results[0])
    assert isinstance(results[1], Detections)
