"""Raw files that cannot collide: the one pairing rule for infer, post and convert."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from PIL import Image

from prelabel.core.errors import PredictionFileError
from prelabel.core.failures import Stage
from prelabel.ingest.rawpaths import RawFileRule, raw_file_for, raw_file_key, raw_file_path
from prelabel.ingest.samples import LABEL_CONFIG
from prelabel.ingest.sources import iter_image_files
from prelabel.labelstudio.config import parse_label_config
from prelabel.predict.batches import infer_items, read_items
from prelabel.predict.models.rawfiles import RawFiles
from prelabel.predict.offline import convert_directory
from prelabel.records import Detections, save_raw_file
from tests.conftest import encode_image


def _image(path: Path, colour: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    path.write_bytes(encode_image(Image.new("RGB", (100, 50), (colour, 0, 0)), fmt))
    return path


def _detections(x: float) -> Detections:
    """One person box whose left edge tells which image it belongs to."""
    return Detections(xyxy=[[x, 5, x + 10, 20]], scores=[0.9], labels=("person",))


@pytest.mark.parametrize(
    ("image", "root", "key"),
    [
        ("/in/a/x.jpg", "/in", "a/x.jpg"),  # under the root: its relative path
        ("/in/x.jpeg", "/in", "x.jpeg"),  # at the root: the name, extension kept
        ("/in/a/../b/x.jpg", "/in", "b/x.jpg"),  # normalised
        ("/elsewhere/x.jpg", "/in", "elsewhere/x.jpg"),  # outside the root: the whole path
        ("/in/a/x.jpg", None, "in/a/x.jpg"),  # no root (a manifest): the whole path
        ("s3://bucket/k/x.jpg", None, "bucket/k/x.jpg"),  # a storage key: bucket and key
        ("https://h.example/p/My%20x.jpg?X-Amz-Signature=s", "/in", "h.example/p/My x.jpg"),  # no query
        ("https://h.example/../../etc/x.jpg", None, "h.example/etc/x.jpg"),  # cannot climb out
    ],
)
def test_raw_file_key(image: str, root: str | None, key: str) -> None:
    assert raw_file_key(image, Path(root) if root else None) == PurePosixPath(key)


def test_same_stems_get_their_own_raw_files(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "raw"
    paths = {raw_file_path(root / name, out, root) for name in ("a/x.jpg", "b/x.jpg", "x.jpeg", "x.jpg")}
    assert paths == {
        out / "a" / "x.jpg.prelabel.json",
        out / "b" / "x.jpg.prelabel.json",
        out / "x.jpeg.prelabel.json",
        out / "x.jpg.prelabel.json",
    }


def _layout(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "in"
    images = [_image(root / "a" / "x.jpg", 10), _image(root / "b" / "x.jpg", 20), _image(root / "x.jpeg", 30)]
    return root, images


def test_two_step_same_stems_in_sub_folders_each_get_their_own_boxes(tmp_path: Path) -> None:
    root, images = _layout(tmp_path)
    out = tmp_path / "raw"
    for n, image in enumerate(images):  # what infer writes
        save_raw_file(raw_file_path(image, out, root), _detections(10.0 * (n + 1)))
    items, errors = read_items([str(p) for p in iter_image_files(root)])
    assert not errors
    result = infer_items(items, RawFiles(out, input_root=root), cache=None)
    assert not result.errors
    lefts = {Path(r.uri).relative_to(root).as_posix(): float(r.detections.xyxy[0][0]) for r in result.records}
    assert lefts == {"a/x.jpg": 10.0, "b/x.jpg": 20.0, "x.jpeg": 30.0}


def test_convert_same_stems_in_sub_folders_each_get_their_own_boxes(tmp_path: Path) -> None:
    root, images = _layout(tmp_path)
    for n, image in enumerate(images):  # raw files beside the images, by the same rule
        save_raw_file(raw_file_path(image, image.parent, image.parent), _detections(10.0 * (n + 1)))
    result = convert_directory(root, parse_label_config(LABEL_CONFIG))
    assert not result.errors and not result.without_predictions
    lefts = {
        task["data"]["image"].rsplit("=", 1)[-1]: task["predictions"][0]["result"][0]["value"]["x"]
        for task in result.tasks
    }
    assert lefts == {"a/x.jpg": pytest.approx(10), "b/x.jpg": pytest.approx(20), "x.jpeg": pytest.approx(30)}


def _legacy(folder: Path, name: str, x: float) -> Path:
    path = folder / name
    save_raw_file(path, _detections(x))
    return path


def test_legacy_names_still_load_where_unambiguous(tmp_path: Path) -> None:
    root = tmp_path / "in"
    photo = _image(root / "photo.jpg")
    other = _image(root / "sub" / "other.png")
    beside = _legacy(root, "photo_dinox_preannot.json", 1)
    _legacy(root, "photo.json", 2)  # the DINO-X name wins over the plain one, as before
    assert raw_file_for(photo) == beside
    assert raw_file_for(other) is None
    # In a raw folder: flat (as the DINO-X scripts write it) or mirrored.
    raw = tmp_path / "raw"
    flat = _legacy(raw, "other.json", 3)
    assert RawFileRule(raw, root).find(other) == flat
    mirrored = _legacy(raw / "sub", "other_dinox_preannot.json", 4)
    assert RawFileRule(raw, root).find(other) == mirrored  # the mirrored folder comes first
    # A file named the new way beats a legacy one.
    own = _legacy(raw / "sub", "other.png.prelabel.json", 5)
    assert RawFileRule(raw, root).find(other) == own


def test_a_legacy_file_claimed_by_several_images_is_ambiguous(tmp_path: Path) -> None:
    root, images = _layout(tmp_path)
    raw = tmp_path / "raw"
    flat = _legacy(raw, "x_dinox_preannot.json", 1)  # a/x.jpg, b/x.jpg and x.jpeg all read it
    rule = RawFileRule(raw, root)
    for image in images:
        with pytest.raises(PredictionFileError, match="ambiguous raw file") as caught:
            rule.find(image)
        assert str(flat) in str(caught.value)
        assert all(str(other) in str(caught.value) for other in images if other != image)
    # Mirrored: raw/a/x.json is a/x.jpg's alone; b/x.jpg still meets the flat one.
    mirrored = _legacy(raw / "a", "x.json", 2)
    assert RawFileRule(raw, root).find(images[0]) == mirrored
    # Beside the images: x.jpg and x.png share x.json.
    twin = _image(root / "a" / "x.png")
    _legacy(root / "a", "x.json", 3)
    for image in (images[0], twin):
        with pytest.raises(PredictionFileError, match="1 other image"):
            raw_file_for(image)


def test_an_ambiguous_pairing_is_an_error_row_never_a_pick(tmp_path: Path) -> None:
    root, images = _layout(tmp_path)
    raw = tmp_path / "raw"
    _legacy(raw, "x.json", 1)
    save_raw_file(raw_file_path(images[2], raw, root), _detections(30))  # x.jpeg has its own
    items, _ = read_items([str(p) for p in images])
    result = infer_items(items, RawFiles(raw, input_root=root), cache=None)
    assert [Path(r.uri).name for r in result.records] == ["x.jpeg"]
    assert [(Path(e.file).parent.name, e.stage) for e in result.errors] == [
        ("a", Stage.READ_PREDICTIONS),
        ("b", Stage.READ_PREDICTIONS),
    ]
    assert all("ambiguous raw file" in e.error for e in result.errors)


def test_missing_raw_file_names_every_name_tried(tmp_path: Path) -> None:
    image = _image(tmp_path / "lonely.jpg")
    items, _ = read_items([str(image)])
    result = infer_items(items, RawFiles(), cache=None)
    assert "lonely.jpg.prelabel.json, lonely_dinox_preannot.json or lonely.json" in result.errors[0].error
