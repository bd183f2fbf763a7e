"""Samples, the offline converter and the ``prelabel`` command."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from prelabel.convert.masks import brush_to_mask, coco_to_mask
from prelabel.core.errors import SourceError
from prelabel.core.images import load_image
from prelabel.ingest.rawpaths import raw_file_for
from prelabel.ingest.samples import LABEL_CONFIG, make_samples
from prelabel.ingest.sources import iter_image_files
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.offline import convert_directory
from tests.conftest import write_samples
from tests.support.cli import Done, prelabel

COLOURS = {
    "car": (200, 40, 40),
    "person": (40, 160, 60),
    "traffic light": (230, 200, 20),
    "dog": (120, 80, 40),
}


@pytest.mark.parametrize("index", range(4))
def test_sample_detections_sit_on_their_shapes(index: int) -> None:
    sample = make_samples()[index]
    pixels = load_image(sample.data, sample.name).to_array().astype(int)
    for label, mask_rle, box in zip(
        sample.detections.labels, sample.detections.masks, sample.detections.xyxy, strict=True
    ):
        mask = coco_to_mask(mask_rle)  # type: ignore[arg-type]
        assert mask.shape == pixels.shape[:2]
        inside = pixels[mask.astype(bool)]
        colour = np.abs(inside - np.asarray(COLOURS[label])).sum(axis=1) < 60
        assert colour.mean() > 0.95, (label, colour.mean())
        ys, xs = np.nonzero(mask)
        assert box[0] <= xs.min() and xs.max() < box[2] and box[1] <= ys.min() and ys.max() < box[3]


def test_third_sample_is_stored_sideways() -> None:
    info = load_image(make_samples()[2].data).info
    assert info.orientation == 6
    assert (info.stored_width, info.stored_height) == (480, 640)
    assert (info.width, info.height) == (640, 480)


def test_convert_directory_and_error_rows(tmp_path: Path) -> None:
    write_samples(tmp_path)
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    (tmp_path / "broken.json").write_text('{"objects": []}')
    (tmp_path / "no_raw.png").write_bytes(make_samples()[0].data)
    (tmp_path / "._scene_1.jpg").write_bytes(b"macOS resource fork")
    (tmp_path / "bad_raw.jpg").write_bytes(make_samples()[1].data)
    (tmp_path / "bad_raw.json").write_text('{"objects": [{"bbox": [1, 2], "category": "car"}]}')
    config = parse_label_config(LABEL_CONFIG)
    result = convert_directory(tmp_path, config, LabelMap({"car": "civilian vehicle"}), "demo-v1")
    assert result.images == 7
    assert len(result.tasks) == 4
    assert result.without_predictions == [str(tmp_path / "no_raw.png")]
    assert [(Path(e.file).name, e.stage) for e in result.errors] == [
        ("bad_raw.jpg", "read predictions"),
        ("broken.jpg", "read image"),
    ]
    assert result.unmatched_labels == {"dog": 1}
    task = result.tasks[2]
    assert task["data"]["image"] == "/data/local-files/?d=scene_3.jpg"
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "demo-v1"
    rects = [r for r in prediction["result"] if r["type"] == "rectanglelabels"]
    assert {r["original_width"] for r in rects} == {640}  # displayed, not stored, width
    brush = next(r for r in prediction["result"] if r["type"] == "brushlabels")
    decoded = brush_to_mask(brush["value"]["rle"], 480, 640)
    assert np.array_equal(decoded, coco_to_mask(make_samples()[2].detections.masks[0]))  # type: ignore[arg-type]


def test_sources_skip_hidden_and_outside_links(tmp_path: Path) -> None:
    (tmp_path / "a.JPG").write_bytes(b"x")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "b.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.jpg"
    outside.write_bytes(b"x")
    (tmp_path / "link.jpg").symlink_to(outside)
    assert [p.name for p in iter_image_files(tmp_path)] == ["a.JPG", "c.png"]
    assert [p.name for p in iter_image_files(tmp_path, recursive=False)] == ["a.JPG"]
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "a_dinox_preannot.json").write_text("{}")
    assert raw_file_for(tmp_path / "a.JPG") == tmp_path / "a_dinox_preannot.json"
    assert raw_file_for(tmp_path / "sub" / "c.png") is None
    with pytest.raises(SourceError, match="no such folder"):
        list(iter_image_files(tmp_path / "missing"))


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., Done]:
    """``prelabel ARGS`` in this process, from ``tmp_path`` (these commands need no server)."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: prelabel(capsys, monkeypatch, *args)


def test_cli_samples_then_convert(tmp_path: Path, cli: Callable[..., Done]) -> None:
    done = cli("samples", "--output-dir", "demo")
    assert done.code == 0, done.err
    done = cli(
        "convert",
        "--input-dir",
        "demo",
        "--config",
        "demo/labeling.xml",
        "--label-map",
        "demo/label_map.json",
        "--tasks",
        "demo/tasks.json",
    )
    assert done.code == 0, done.err
    assert "4 tasks with 8 regions" in done.out
    tasks = json.loads((tmp_path / "demo" / "tasks.json").read_text())
    assert len(tasks) == 4
    # One image fails: exit code 1, unless told otherwise; its error is in the CSV.
    (tmp_path / "demo" / "scene_1.jpg").write_bytes(b"")
    args = ["convert", "--input-dir", "demo", "--config", "demo/labeling.xml", "--errors-csv", "errors.csv"]
    done = cli(*args)
    assert done.code == 1
    assert "scene_1.jpg: file is empty" in (tmp_path / "errors.csv").read_text()
    assert cli(*args, "--allow-failures").code == 0


def test_cli_input_errors_are_one_line(cli: Callable[..., Done]) -> None:
    done = cli("convert", "--input-dir", "nowhere", "--config", "missing.xml")
    assert done.code == 2
    assert (
        done.err.strip()
        == "prelabel: error: missing.xml: cannot read ([Errno 2] No such file or directory: 'missing.xml')"
    )
    assert "Traceback" not in done.err


def test_polygon_tolerance_reaches_the_outline(tmp_path: Path, cli: Callable[..., Done]) -> None:
    """``--polygon-tolerance``: a disc traced exactly has many vertices, loosely only a few."""
    from PIL import Image

    from prelabel.convert.masks import mask_to_coco

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (100, 100), (90, 90, 90)).save(tmp_path / "photos" / "disc.jpg")
    yy, xx = np.mgrid[:100, :100]
    disc = (((xx - 50) ** 2 + (yy - 50) ** 2) <= 30**2).astype(np.uint8)
    raw = {
        "objects": [{"bbox": [20, 20, 81, 81], "score": 0.9, "category": "disc", "mask": mask_to_coco(disc)}]
    }
    (tmp_path / "photos" / "disc.json").write_text(json.dumps(raw))
    (tmp_path / "config.xml").write_text(
        '<View><Image name="image" value="$image"/>'
        '<PolygonLabels name="polygon" toName="image"><Label value="disc"/></PolygonLabels></View>'
    )
    vertices = {}
    for tolerance in ("0.5", "5"):
        args = [
            "convert",
            "--input-dir",
            "photos",
            "--config",
            "config.xml",
            "--tasks",
            f"{tolerance}.json",
            "--polygon-tolerance",
            tolerance,
        ]
        done = cli(*args)
        assert done.code == 0, done.err
        (task,) = json.loads((tmp_path / f"{tolerance}.json").read_text())
        (result,) = task["predictions"][0]["result"]
        vertices[tolerance] = len(result["value"]["points"])
    assert vertices["0.5"] > 2 * vertices["5"] >= 8
    args = ["convert", "--input-dir", "photos", "--config", "config.xml", "--polygon-tolerance", "-1"]
    done = cli(*args)
    assert done.code == 2 and "--polygon-tolerance" in done.err
