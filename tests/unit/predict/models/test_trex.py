"""T-Rex visual prompts: the documented body, reached through the local DINO-X-protocol server."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from prelabel.core.errors import DinoxError, SettingsError
from prelabel.predict.models import create_model
from prelabel.records import Detections
from tests.support.dinox_server import TOKEN, dinox_server
from tests.unit.predict.models.test_dinox import _item, _jpeg


def _trex(url: str, tmp_path: Path, **options: Any) -> Any:
    ref = tmp_path / "ref.jpg"
    ref.write_bytes(_jpeg(200, 100, seed=7))
    other = tmp_path / "other.jpg"
    other.write_bytes(_jpeg(50, 40, seed=8))
    given = {
        "prompt_images": f"{ref},{other}",
        "prompt_boxes": {"car": [[0, 10, 20, 110, 80], [1, 1, 2, 30, 20]], "person": [[0, 120, 10, 150, 90]]},
        "poll_interval": 0.01,
        "rate": 1000.0,
        "token": TOKEN,
        "base_url": url,
    }
    return create_model("trex", **{**given, **options})


def test_visual_prompt_body_and_answer(tmp_path: Path) -> None:
    with dinox_server() as (url, state):
        (found,) = _trex(url, tmp_path, max_side=100).predict([_item(_jpeg(64, 48))])
    assert isinstance(found, Detections) and found.labels == ("car",)  # category_id 1 -> first label
    ((path, body),) = state.bodies
    assert path == "/v2/task/trex/detection"
    assert set(body) == {"model", "image", "targets", "prompt"} and body["targets"] == ["bbox"]
    first, second = body["prompt"]["visual_images"]
    # the 200x100 reference was sent at 100x50: its boxes halved with it
    assert first["interactions"] == [
        {"type": "rect", "category_id": 1, "rect": [5.0, 10.0, 55.0, 40.0]},
        {"type": "rect", "category_id": 2, "rect": [60.0, 5.0, 75.0, 45.0]},
    ]
    assert second["interactions"] == [{"type": "rect", "category_id": 1, "rect": [1.0, 2.0, 30.0, 20.0]}]
    sent = Image.open(io.BytesIO(base64.b64decode(first["image"].partition(",")[2])))
    assert sent.size == (100, 50)


def test_threshold_applies_to_the_answer(tmp_path: Path) -> None:
    with dinox_server() as (url, _):
        (found,) = _trex(url, tmp_path, bbox_threshold=0.95).predict([_item(_jpeg(64, 48))])
    assert isinstance(found, Detections) and len(found) == 0  # the server scores 0.9


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prompt_images": ""}, "needs prompt_images"),  # none given
        ({"prompt_images": "missing.jpg"}, "missing.jpg: no such file"),
        ({"prompt_boxes": None}, "needs prompt_boxes"),
        # the command line's prompt_boxes with its closing brace missing: a string, not "needed"
        ({"prompt_boxes": '{"car": [[0, 10, 20, 110, 80]]'}, "prompt_boxes is not a JSON object"),
        ({"prompt_boxes": {"car": [[2, 0, 0, 5, 5]]}}, r"not \[image index 0..1"),  # no third image
        ({"prompt_boxes": {"car": [[0, 5, 5, 5, 9], [1, 0, 0, 1, 1]]}}, "has no area"),
        ({"prompt_boxes": {"car": [[0, 0, 0, 5, 5]]}}, "prompt image 1 has no box"),
        ({"prompt_boxes": {"car": [[0, "a", 0, 5, 5]]}}, "is not"),
        ({"classes": ["car"]}, "not classes"),
    ],
)
def test_bad_prompt_options_are_clear(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        _trex("http://127.0.0.1:9", tmp_path, **options)


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        # the 200x100 reference: a box past its right edge, one above its top
        (
            {"car": [[0, 150, 20, 210, 80], [1, 1, 2, 30, 20]]},
            r"\[0, 150.0, 20.0, 210.0, 80.0\] reaches outside",
        ),
        ({"car": [[0, 10, -5, 110, 80], [1, 1, 2, 30, 20]]}, r"200x100 as displayed"),
        # the 50x40 one: a box drawn for the larger image
        ({"car": [[0, 10, 20, 110, 80], [1, 10, 20, 110, 80]]}, r"other.jpg \(50x40"),
    ],
)
def test_a_box_outside_its_reference_image_stops_the_batch(
    tmp_path: Path, boxes: dict[str, Any], message: str
) -> None:
    with dinox_server() as (url, state):
        model = _trex(url, tmp_path, prompt_boxes=boxes)
        with pytest.raises(SettingsError, match=message):
            model.predict([_item(_jpeg(64, 48)), _item(_jpeg(64, 48, seed=2))])
    assert state.bodies == []  # nothing sent


def test_an_unreadable_reference_image_stops_the_batch_once(tmp_path: Path) -> None:
    """Not an error row per image (each reading the file again): one clear error for the batch."""
    with dinox_server() as (url, state):
        model = _trex(url, tmp_path)
        (tmp_path / "other.jpg").write_bytes(b"not an image")
        with pytest.raises(SettingsError, match=r"trex prompt image .*other\.jpg"):
            model.predict([_item(_jpeg(64, 48)), _item(_jpeg(64, 48, seed=2))])
    assert state.bodies == []


@pytest.mark.parametrize("number", [0, 3, True, "1", 1.0, None])  # sent: 1 (car) and 2 (person)
def test_an_answer_naming_no_sent_category_is_an_error(tmp_path: Path, number: Any) -> None:
    model = _trex("http://127.0.0.1:9", tmp_path)
    answer = {"objects": [{"bbox": [1, 2, 30, 40], "score": 0.9, "category_id": number}]}
    with pytest.raises(DinoxError, match=r"category_id .*; sent 1..2"):
        model._detections(answer, "a.jpg")


def test_a_trailing_comma_in_prompt_images_is_no_missing_image(tmp_path: Path) -> None:
    """``prompt_images=ref.jpg,other.jpg,`` said "trex needs prompt_images" (an empty third path)."""
    model = _trex("http://127.0.0.1:9", tmp_path)
    again = _trex("http://127.0.0.1:9", tmp_path, prompt_images=",".join(model.prompt_images) + ",")
    assert again.prompt_images == model.prompt_images
