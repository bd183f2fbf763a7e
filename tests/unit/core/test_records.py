"""The prediction record, raw DINO-X files, and the mask-frame rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prelabel.convert.geometry import orient_mask
from prelabel.convert.masks import coco_to_mask, mask_to_coco
from prelabel.core.errors import MaskError, PredictionFileError
from prelabel.core.images import ImageInfo
from prelabel.display import to_display_frame
from prelabel.records import (
    Choice,
    Detections,
    Keypoint,
    ModelSignature,
    detections_from_raw,
    load_raw_file,
    save_raw_file,
)


def _info(width: int, height: int, orientation: int = 1) -> ImageInfo:
    stored = (height, width) if orientation >= 5 else (width, height)
    return ImageInfo("img.jpg", "0" * 64, width, height, orientation, *stored, "JPEG", "RGB")


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"xyxy must have shape \(n, 4\)"):
        Detections(xyxy=np.zeros((2, 3)), scores=np.zeros(2), labels=("a", "b"))
    with pytest.raises(ValueError, match="scores must have 2 entries"):
        Detections(xyxy=np.zeros((2, 4)), scores=np.zeros(3), labels=("a", "b"))
    with pytest.raises(ValueError, match="labels must have 2 entries"):
        Detections(xyxy=np.zeros((2, 4)), scores=np.zeros(2), labels=("a",))


def test_operations_return_detections() -> None:
    det = Detections(xyxy=np.arange(12).reshape(3, 4), scores=[0.9, 0.2, 0.5], labels=("a", "b", "c"))
    kept = det.with_min_score(0.5)
    assert isinstance(kept, Detections)
    assert kept.labels == ("a", "c")
    assert kept.xyxy.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert kept.masks == (None, None)
    assert len(Detections()) == 0
    assert len(det[[]]) == 0


def test_signature_key_is_stable_and_sensitive() -> None:
    a = ModelSignature("dinox", "DINO-X-1.0", {"bbox_threshold": 0.25, "prompt": "universal"})
    b = ModelSignature("dinox", "DINO-X-1.0", {"prompt": "universal", "bbox_threshold": 0.25})
    c = ModelSignature("dinox", "DINO-X-1.0", {"prompt": "universal", "bbox_threshold": 0.3})
    assert a.key == b.key != c.key


DINOX_FILE = {
    "objects": [
        {
            "bbox": [10, 20, 30, 40],
            "score": 0.8,
            "category": "car",
            "mask": {"size": [50, 60], "counts": mask_to_coco(np.ones((50, 60), np.uint8))["counts"]},
        },
        {"bbox": [1.5, 2.5, 3.5, 4.5], "score": 0.4, "category": "person"},
    ]
}


@pytest.mark.parametrize(
    "wrapper",
    [
        lambda objs: objs,  # as saved by the DINO-X scripts
        lambda objs: {"result": objs},  # the task result
        lambda objs: {"code": 0, "data": {"result": objs}},  # the whole API answer
    ],
)
def test_raw_file_shapes_load(tmp_path: Path, wrapper) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "img_dinox_preannot.json"
    path.write_text(json.dumps(wrapper(DINOX_FILE)))
    det = load_raw_file(path)
    assert det.labels == ("car", "person")
    assert det.xyxy[1].tolist() == [1.5, 2.5, 3.5, 4.5]
    assert det.masks[1] is None
    assert det.masks[0] is not None and det.masks[0]["size"] == [50, 60]


def test_raw_round_trip(tmp_path: Path) -> None:
    det = detections_from_raw(DINOX_FILE)
    save_raw_file(tmp_path / "out" / "a.json", det)
    again = load_raw_file(tmp_path / "out" / "a.json")
    assert again.labels == det.labels
    assert np.array_equal(again.xyxy, det.xyxy)
    assert again.masks == det.masks
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_polygons_keypoints_and_choices_round_trip(tmp_path: Path) -> None:
    det = Detections(
        xyxy=[[0, 0, 10, 10], [5, 5, 20, 30]],
        scores=[0.9, 0.8],
        labels=["text", "person"],
        texts=["STOP", None],
        polygons=[[(0, 1), (10, 0), (10, 9), (0, 10)], None],
        keypoints=[None, [Keypoint("nose", 12.5, 8.0, 0.7), ("left_eye", 11, 7)]],
        choices=[("day", 0.9)],
    )
    save_raw_file(tmp_path / "a.json", det)
    again = load_raw_file(tmp_path / "a.json")
    assert again.polygons == ((((0.0, 1.0), (10.0, 0.0), (10.0, 9.0), (0.0, 10.0))), None)
    assert again.keypoints == (None, (Keypoint("nose", 12.5, 8.0, 0.7), Keypoint("left_eye", 11.0, 7.0, 1.0)))
    assert again.choices == (Choice("day", 0.9),)
    picked = again[[1]]
    assert picked.keypoints == again.keypoints[1:] and picked.choices == again.choices
    assert again.with_min_score(0.95).choices == (Choice("day", 0.9),)
    with pytest.raises(ValueError, match="keypoints must have 2 entries"):
        Detections(xyxy=[[0, 0, 1, 1], [0, 0, 2, 2]], scores=[1, 1], labels=["a", "b"], keypoints=[None])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "objects"),
        ('{"objects": {}}', "must be a list"),
        ('{"objects": [{"bbox": [1, 2, 3], "category": "a"}]}', r"objects\[0\].bbox"),
        ('{"objects": [{"bbox": [1, 2, 3, "x"], "category": "a"}]}', r"objects\[0\].bbox"),
        ('{"objects": [{"bbox": [1, 2, 3, 4], "category": ""}]}', "category"),
        ('{"objects": [{"bbox": [1, 2, 3, 4], "category": "a", "score": "high"}]}', "score"),
        (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "a", "mask": {"size": [2, 2], "counts": [1]}}]}',
            r"objects\[0\].mask",
        ),
        ('{"objects": [1]}', "must be an object"),
        (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "a", "polygon": [[1, 2], [3, 4]]}]}',
            r"objects\[0\].polygon",
        ),
        (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "a", '
            '"keypoints": [{"label": "nose", "x": 1}]}]}',
            r"objects\[0\].keypoints\[0\]",
        ),
        ('{"objects": [], "choices": [{"label": "day", "score": "high"}]}', r"choices\[0\]"),
    ],
)
def test_malformed_raw_files_name_the_file_and_object(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PredictionFileError, match=message) as caught:
        load_raw_file(path)
    assert caught.value.name == str(path)


def _blob(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[2:5, 1:4] = 1
    return mask


def test_frame_same_size_untouched() -> None:
    det = Detections(xyxy=[[1, 2, 4, 5]], scores=[1], labels=("a",), masks=(mask_to_coco(_blob(10, 20)),))
    assert to_display_frame(det, _info(20, 10)) is det


def test_frame_stored_grid_is_rotated() -> None:
    # File stored 20 wide x 10 high with orientation 6: displayed 10 wide x 20 high.
    stored_mask = _blob(10, 20)
    det = Detections(xyxy=[[1, 2, 4, 5]], scores=[1], labels=("a",), masks=(mask_to_coco(stored_mask),))
    out = to_display_frame(det, _info(10, 20, orientation=6))
    shown = coco_to_mask(out.masks[0])  # type: ignore[arg-type]
    assert shown.shape == (20, 10)
    assert np.array_equal(shown, orient_mask(stored_mask, 6))
    ys, xs = np.nonzero(shown)
    assert out.xyxy[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_frame_downscaled_by_an_api_is_scaled_back() -> None:
    small = np.zeros((5, 10), np.uint8)
    small[1:3, 2:6] = 1
    det = Detections(xyxy=[[2, 1, 6, 3]], scores=[1], labels=("a",), masks=(mask_to_coco(small),))
    out = to_display_frame(det, _info(20, 10))
    assert out.xyxy[0].tolist() == [4, 2, 12, 6]
    big = coco_to_mask(out.masks[0])  # type: ignore[arg-type]
    assert big.shape == (10, 20)
    assert big.sum() == small.sum() * 4
    assert np.array_equal(big[::2, ::2], small)


def test_frame_mismatch_is_an_error_not_a_guess() -> None:
    det = Detections(xyxy=[[1, 1, 2, 2]], scores=[1], labels=("a",), masks=(mask_to_coco(_blob(10, 10)),))
    with pytest.raises(MaskError, match="masks are 10x10 but the image is displayed at 10x20"):
        to_display_frame(det, _info(20, 10))


def test_frame_masks_of_several_sizes_are_an_error() -> None:
    masks = (mask_to_coco(_blob(10, 20)), mask_to_coco(_blob(8, 8)))
    det = Detections(xyxy=[[1, 1, 2, 2]] * 2, scores=[1, 1], labels=("a", "b"), masks=masks)
    with pytest.raises(MaskError, match="several sizes"):
        to_display_frame(det, _info(20, 10))
