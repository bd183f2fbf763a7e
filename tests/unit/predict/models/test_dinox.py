"""The DINO-X client against a local server speaking the V2 protocol, faults included."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from prelabel.convert.masks import coco_size, coco_to_mask, mask_to_coco
from prelabel.core.errors import DinoxAuthError, DinoxError
from prelabel.core.images import read_image_info
from prelabel.ingest.samples import make_samples
from prelabel.predict.models import ImageItem, create_model
from prelabel.records import Detections
from tests.support.dinox_server import TOKEN, dinox_server


def _item(data: bytes, name: str = "img.jpg") -> ImageItem:
    return ImageItem(uri=name, data=data, info=read_image_info(data, name))


def _jpeg(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _model(url: str, **options: Any) -> Any:
    fast = {
        "poll_interval": 0.01,
        "backoff": 0.01,
        "rate": 1000.0,
        "retries": 4,
        "token": TOKEN,
        "base_url": url,
    }
    return create_model(options.pop("name", "dinox"), **{**fast, **options})


def test_boxes_and_masks_on_the_displayed_grid() -> None:
    sample = make_samples()[2]  # stored sideways, EXIF 6: displayed 640 x 480
    with dinox_server() as (url, state):
        (found,) = _model(url).predict([_item(sample.data)])
    assert isinstance(found, Detections)
    assert state.sizes == [(640, 480)]  # the API saw the displayed pixels
    assert found.labels == ("car",)
    assert found.xyxy[0].tolist() == pytest.approx([64, 96, 384, 336])
    assert coco_size(found.masks[0]) == (480, 640)  # type: ignore[arg-type]


def test_text_prompt_and_signature_without_secrets() -> None:
    with dinox_server() as (url, _):
        model = _model(url, classes="person.car")
        (found,) = model.predict([_item(_jpeg(64, 48))])
    assert isinstance(found, Detections) and found.labels == ("person",)
    signature = model.signature()
    assert signature.params["prompt"] == {"type": "text", "text": "person.car"}
    assert TOKEN not in repr(signature) and TOKEN not in signature.key


def test_large_images_are_downscaled_and_results_scaled_back() -> None:
    with dinox_server() as (url, state):
        (found,) = _model(url, max_side=1000).predict([_item(_jpeg(3000, 1000))])
    assert state.sizes == [(1000, 333)]
    assert isinstance(found, Detections)
    assert found.xyxy[0].tolist() == pytest.approx([300, 200, 1800, 700], abs=2.0)
    mask = coco_to_mask(found.masks[0])  # type: ignore[arg-type]
    assert mask.shape == (1000, 3000)
    _, xs = np.nonzero(mask)
    assert abs(xs.min() - 300) <= 3 and abs(xs.max() + 1 - 1800) <= 3


@pytest.mark.parametrize(
    ("fault", "times"),
    [
        ("429", 2),
        ("500", 2),
        ("busy", 2),
        ("malformed", 2),
        ("drop", 2),
        ("slow", 1),
    ],  # one image makes one task: it answers "running" to its first three polls
)
def test_survives_each_transient_fault(fault: str, times: int) -> None:
    with dinox_server() as (url, state):
        state.faults.extend([fault] * times)
        results = _model(url).predict([_item(_jpeg(64, 48))])
    assert len(results) == 1 and isinstance(results[0], Detections), results
    assert len(results[0]) == 1
    assert state.served == [fault] * times and not state.faults  # every fault met the client
    # a create and a poll, and a retry per fault; a slow task three more polls
    assert state.requests == 2 + (3 if fault == "slow" else times)


def test_failed_task_is_that_images_error() -> None:
    with dinox_server() as (url, state):
        state.faults.append("failed")
        results = _model(url, concurrency=1).predict(
            [_item(_jpeg(64, 48, 1), "a.jpg"), _item(_jpeg(64, 48, 2), "b.jpg")]
        )
    assert len(results) == 2 and state.served == ["failed"]
    assert isinstance(results[0], DinoxError) and "model crashed" in str(results[0])
    assert isinstance(results[1], Detections) and len(results[1]) == 1


def test_deadline_and_exhausted_retries() -> None:
    with dinox_server() as (url, state):
        state.faults.append("slow")
        (late,) = _model(url, deadline=0.02, poll_interval=0.02).predict([_item(_jpeg(64, 48))])
        state.faults.extend(["500"] * 10)
        (gave_up,) = _model(url, retries=2).predict([_item(_jpeg(64, 48, 3))])
    assert isinstance(late, DinoxError) and "not done after" in str(late)
    assert isinstance(gave_up, DinoxError) and "failed after 3 tries" in str(gave_up)
    assert state.served == ["slow", "500", "500", "500"] and list(state.faults) == ["500"] * 7


def test_bad_token_stops_the_batch() -> None:
    with dinox_server() as (url, _), pytest.raises(DinoxAuthError, match="refused the token"):
        _model(url, token="wrong").predict([_item(_jpeg(64, 48))])


def test_fifty_images_with_a_fifth_of_requests_failing() -> None:
    with dinox_server() as (url, state):
        state.every = 5  # 20% of fresh requests: 429, 500, busy, malformed, dropped connection
        results = _model(url, concurrency=4).predict([_item(_jpeg(32, 24, i), f"{i}.jpg") for i in range(50)])
    assert len(results) == 50 and all(isinstance(r, Detections) and len(r) == 1 for r in results)
    assert state.requests > 100  # every image created and polled, with retries on top
    assert len(state.served) == state.fresh // 5  # each fifth fresh request was a fault
    assert state.requests == state.fresh + len(state.served)  # and was retried once
    assert set(state.served) == set(state.cycle)  # of every kind


def test_idempotency_key_is_stable() -> None:
    data = _jpeg(40, 30)
    with dinox_server() as (url, state):
        model = _model(url)
        model.predict([_item(data)])
        model.predict([_item(data)])
    assert len(state.keys) == 1 and len(state.tasks) == 1  # the second create got the same task back


def test_sister_endpoints_and_missing_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PRELABEL_DINOX_TOKEN", raising=False)
    assert create_model("dino-xseek").signature().model == "dinox-api/dino-xseek"
    assert create_model("grounding-dino-pro").signature().revision == "GroundingDino-1.6-Pro"
    from prelabel.core.errors import SettingsError

    with pytest.raises(SettingsError, match="PRELABEL_DINOX_TOKEN"):
        create_model("dinox").predict([_item(_jpeg(8, 8))])


def _lie(data: dict[str, Any]) -> dict[str, Any]:
    return {"code": 0, "data": data, "msg": "ok"}


@pytest.mark.parametrize(
    ("faults", "lie", "says"),
    [
        (
            ["lie"],
            _lie({}),
            "a.jpg: DINO-X created a task without a usable task_uuid",
        ),  # created, but no task id: a KeyError traceback
        (
            ["lie"],
            _lie({"task_uuid": None}),
            "a.jpg: DINO-X created a task without a usable task_uuid",
        ),  # polled /task_status/None
        (
            ["lie"],
            _lie({"task_uuid": {"id": 1}}),
            "a.jpg: DINO-X created a task without a usable task_uuid",
        ),  # a dict in the URL
        (
            ["lie"],
            _lie({"task_uuid": "../../v1/account"}),
            "a.jpg: DINO-X created a task without a usable task_uuid",
        ),  # a path with the token
        # the finished task's objects of the wrong shape
        (["pass", "lie"], _lie({"status": "success", "result": {"objects": [{"bbox": "x"}]}}), "bbox"),
        (["pass", "lie"], _lie({"status": "success", "result": ["car"]}), "objects"),
        # a failed task's reason, or an error's msg, of a megabyte: cut for the error row and log
        (["pass", "lie"], _lie({"status": "failed", "error": "x" * 2**20}), "failed: " + "x" * 200),
        (["lie"], {"code": 500123, "msg": "y" * 2**20}, "code 500123: " + "y" * 200),
    ],
)
def test_a_lying_answer_is_that_images_error(faults: list[str], lie: dict[str, Any], says: str) -> None:
    with dinox_server() as (url, state):
        state.faults.extend(faults)
        state.lies.append(lie)
        bad, good = _model(url, concurrency=1).predict(
            [_item(_jpeg(64, 48, 1), "a.jpg"), _item(_jpeg(64, 48, 2))]
        )
    assert isinstance(bad, DinoxError) and says in str(bad) and len(str(bad)) < 500, str(bad)[:300]
    assert isinstance(good, Detections) and len(good) == 1
    assert state.served == ["lie"] and not state.lies  # the lie was told


def test_points_in_an_answer_are_scaled_back_like_its_boxes() -> None:
    """An answer's polygon and keypoints are on the sent (downscaled) grid, like its boxes;
    they stayed there: a region at half its place and size."""
    obj = {
        "bbox": [2, 4, 10, 12],
        "score": 0.9,
        "category": "car",
        "polygon": [[2, 4], [10, 4], [10, 12]],
        "keypoints": [{"label": "nose", "x": 6, "y": 8, "score": 0.5}],
    }
    with dinox_server() as (url, state):
        state.faults.extend(["pass", "lie"])
        state.lies.append(_lie({"status": "success", "result": {"objects": [obj]}}))
        (found,) = _model(url, max_side=32).predict([_item(_jpeg(64, 48))])
    assert state.sizes == [(32, 24)]
    assert isinstance(found, Detections)
    assert found.xyxy.tolist() == [[4, 8, 20, 24]]
    assert found.polygons == (((4.0, 8.0), (20.0, 8.0), (20.0, 24.0)),)
    assert found.keypoints[0] is not None and found.keypoints[0][0][1:3] == (12.0, 16.0)


@pytest.mark.parametrize("max_side", [2048, 32])  # sent as it is, and downscaled to 32 x 24
def test_a_mask_on_another_grid_than_the_sent_image_is_that_images_error(max_side: int) -> None:
    """It was stretched onto the image, and the answer's boxes kept as if on the sent grid."""
    obj = {
        "bbox": [2, 4, 10, 12],
        "score": 0.9,
        "category": "car",
        "mask": mask_to_coco(np.ones((10, 10), np.uint8)),
    }
    with dinox_server() as (url, state):
        state.faults.extend(["pass", "lie"])
        state.lies.append(_lie({"status": "success", "result": {"objects": [obj]}}))
        bad, good = _model(url, max_side=max_side, concurrency=1).predict(
            [_item(_jpeg(64, 48), "a.jpg"), _item(_jpeg(64, 48, 2))]
        )
    sent = "64x48" if max_side > 64 else "32x24"
    assert isinstance(
        bad, DinoxError
    ) and f"a.jpg: DINO-X answered a 10x10 mask for the image sent at {sent}" in str(bad)
    assert isinstance(good, Detections) and len(good) == 1
