"""Model chains: detr+vitpose+siglip fills boxes, keypoints and choices in one run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from prelabel.core.errors import SettingsError
from prelabel.predict.models import ImageItem, create_model
from prelabel.predict.models.chain import ModelChain
from prelabel.records import Detections
from tests.conftest import random_image_item


def chain_options(detr: Path, vitpose: Path, siglip: Path) -> dict[str, object]:
    return {
        "detr.checkpoint": str(detr),
        "detr.threshold": 0.0,
        "detr.device": "cpu",
        "vitpose.checkpoint": str(vitpose),
        "vitpose.threshold": -1e9,
        "vitpose.device": "cpu",
        "siglip.checkpoint": str(siglip),
        "siglip.choices": "indoor,outdoor",
        "siglip.threshold": 0.0,
        "siglip.device": "cpu",
    }


def test_chain_fills_boxes_keypoints_and_choices(
    tiny_detr: Path, tiny_vitpose: Path, tiny_siglip: Path
) -> None:
    options = chain_options(tiny_detr, tiny_vitpose, tiny_siglip)
    chain = create_model("detr+vitpose+siglip", **options)
    assert isinstance(chain, ModelChain)
    bad = ImageItem(
        uri="bad.png", data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, info=random_image_item(0, (8, 8)).info
    )
    items = [random_image_item(1, (64, 64)), bad, random_image_item(2, (80, 60))]
    found = chain.predict(items)
    boxes = create_model("detr", checkpoint=str(tiny_detr), threshold=0.0, device="cpu").predict(items)
    assert not isinstance(found[1], Detections) and "bad.png" in str(found[1])
    for i in (0, 2):
        result, detected = found[i], boxes[i]
        assert isinstance(result, Detections) and isinstance(detected, Detections)
        np.testing.assert_allclose(result.xyxy, detected.xyxy, atol=1e-4)
        assert result.labels == detected.labels and "person" in result.labels
        for label, points in zip(result.labels, result.keypoints, strict=True):
            assert (points is not None) == (label == "person")
        assert (
            any(result.keypoints)
            and len(result.choices) == 1
            and result.choices[0].label in ("indoor", "outdoor")
        )


def test_chain_options_signature_and_errors(tiny_detr: Path, tiny_vitpose: Path, tiny_siglip: Path) -> None:
    options = chain_options(tiny_detr, tiny_vitpose, tiny_siglip)
    signature = create_model("detr+vitpose+siglip", **options).signature()
    assert signature.model == "detr+vitpose+siglip" and set(signature.params) == {"detr", "vitpose", "siglip"}
    for key, value in (("detr.threshold", 0.5), ("vitpose.threshold", 0.3), ("siglip.top_k", 2)):
        assert create_model("detr+vitpose+siglip", **{**options, key: value}).signature().key != signature.key
    # a part alone keeps the signature (and cache entries) it always had
    assert (
        create_model("detr", checkpoint="x").signature()
        == create_model("detr+siglip", **{"detr.checkpoint": "x"}).parts[0].signature()
    )  # type: ignore[attr-defined]
    with pytest.raises(
        SettingsError, match="each option starts with the name of its model \\(detr, vitpose\\)"
    ):
        create_model("detr+vitpose", threshold=0.3)
    with pytest.raises(SettingsError, match="model 'vitpose' has no option 'classes'"):
        create_model("detr+vitpose", **{"vitpose.classes": "car"})
    with pytest.raises(SettingsError, match="detr cannot follow another model"):
        create_model("siglip+detr")
    with pytest.raises(SettingsError, match="vitpose cannot start a chain"):
        create_model("vitpose+siglip")
    with pytest.raises(SettingsError, match="name each model once"):
        create_model("detr+detr")
    with pytest.raises(SettingsError, match="unknown model 'pose'"):
        create_model("detr+pose")


def test_model_for_gives_each_batching_part_the_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from tasks.inference import model_for

    monkeypatch.setenv("PRELABEL_INFER_BATCH_SIZE", "5")
    chain = model_for("detr+vitpose+siglip", {"siglip.batch_size": 2, "siglip.choices": "a,b"})
    assert [part.batch_size for part in chain.parts] == [5, 5, 2]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "says"),
    [
        # the command line's vitpose.threshold=high: compared with scores only inside the run
        (
            {"vitpose.threshold": "high"},
            "model 'vitpose': option threshold must be a finite number, got 'high'",
        ),
        (
            {"vitpose.threshold": float("nan")},
            "threshold must be a finite number",
        ),  # NaN: every keypoint kept
        ({"siglip.top_k": 1.5}, "top_k must be a whole number, got 1.5"),  # ranked[:1.5]: TypeError
        ({"siglip.batch_size": 2.0}, "batch_size must be a whole number"),  # range(0, n, 2.0): TypeError
        (
            {"vitpose.dataset_index": True},
            "dataset_index must be a whole number, got True",
        ),  # a bool is an int
    ],
)
def test_an_option_of_the_wrong_type_is_a_clear_error_before_the_run(
    options: dict[str, object], says: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(says)):
        create_model("detr+vitpose+siglip", **options)


def test_options_of_the_right_type_pass() -> None:
    chain = create_model(
        "detr+vitpose+siglip",
        **{"detr.threshold": 1, "detr.revision": None, "vitpose.threshold": -1e9, "siglip.top_k": 2},
    )
    assert chain.parts[1].threshold == -1e9  # type: ignore[attr-defined]
