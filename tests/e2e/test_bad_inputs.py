"""The bad-input corpus, through the command line as a user meets it.

Each bad item is one clear error row naming it, every good item is processed, the exit code
is 1 (2 for bad arguments), and there is never a traceback or a hang. One case per comment.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prelabel.convert.masks import mask_to_coco
from prelabel.ingest.samples import LABEL_CONFIG, make_samples
from prelabel.records import save_raw_file
from tests.conftest import encode_image, run_prelabel, write_samples
from tests.support.http_faults import Site, serve

SAMPLES = make_samples()


def _rows(path: Path, names: bool = True) -> dict[str, str]:
    """An errors CSV as {file name (or the whole file column): error}."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {Path(r["file"]).name if names else r["file"]: r["error"] for r in csv.DictReader(handle)}


def _clean(done: subprocess.CompletedProcess[str], code: int) -> None:
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]


def _raw(folder: Path, stem: str, body: str) -> None:
    (folder / f"{stem}.jpg").write_bytes(SAMPLES[0].data)
    (folder / f"{stem}.json").write_text(body, encoding="utf-8")


def test_convert_corpus_images_and_raw_files(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_samples(folder)  # four good images with good raw files
    good_raw = '{"objects": [{"bbox": [1, 2, 30, 40], "category": "car", "score": 0.9}]}'
    cannot_read = "not an image, or a format prelabel cannot read"
    bad_images = {  # name: (bytes, why it fails)
        "empty.jpg": (b"", "file is empty (0 bytes)"),  # 0 bytes
        "truncated.jpg": (SAMPLES[1].data[:200], "corrupt image header"),  # cut mid-file
        "text.jpg": (b"hello, not an image", cannot_read),  # not an image at all
        "eps.jpg": (
            b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
            cannot_read,
        ),  # EPS: no Ghostscript
        "garbage.jpg": (b"\xff\xd8\xff" + b"junk" * 50, cannot_read),  # a JPEG signature, then junk
    }
    for name, (data, _) in bad_images.items():
        (folder / name).write_bytes(data)
        (folder / f"{Path(name).stem}.json").write_text(good_raw)
    huge_mask = {"size": [100000, 100000], "counts": "0"}  # six characters declaring 10^10 pixels
    wrong_grid = mask_to_coco(np.ones((33, 77), np.uint8))  # made on another image
    bbox = "objects[0].bbox must be [x1, y1, x2, y2] finite numbers"
    choice = "objects[0].choices[0] must be {label, score} with a finite score"
    bad_raw = {  # stem: (raw file, why it fails)
        "notjson": ("{not json", "not valid JSON (Expecting property name"),  # not JSON
        "shape": ('{"objects": {"bbox": [1, 2, 3, 4]}}', "'objects' must be a list, got dict"),  # not a list
        "short": (
            '{"objects": [{"bbox": [1, 2, 3], "category": "car"}]}',
            f"{bbox}, got [1, 2, 3]",
        ),  # three numbers
        "digits400": ('{"objects": [{"bbox": [1, 2, 3, ' + "9" * 400 + '], "category": "car"}]}', bbox),
        "digits5000": (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "car", "score": ' + "9" * 5000 + "}]}",
            "not valid JSON (Exceeds the limit",
        ),
        "deep": (
            "[" * 50000 + "]" * 50000,
            "not valid JSON (maximum recursion depth",
        ),  # past the parser's depth
        "nan": ('{"objects": [{"bbox": [1, 2, NaN, 4], "category": "car"}]}', f"{bbox}, got [1, 2, nan, 4]"),
        "nolabel": (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": ""}]}',
            "objects[0].category must be a non-empty string",
        ),  # empty category
        "score": (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "car", "score": "high"}]}',
            "objects[0].score must be a finite number, got high",
        ),  # a string
        "hugemask": (
            json.dumps({"objects": [{"bbox": [1, 2, 3, 4], "category": "car", "mask": huge_mask}]}),
            "its size 100000x100000 needs 10000000000",
        ),
        "counts": (
            json.dumps(
                {
                    "objects": [
                        {
                            "bbox": [1, 2, 3, 4],
                            "category": "car",
                            "mask": {"size": [480, 640], "counts": [5, 5]},
                        }
                    ]
                }
            ),
            "COCO RLE counts cover 10 pixels, its size 480x640 needs 307200",
        ),
        "grid": (
            json.dumps({"objects": [{"bbox": [1, 2, 3, 4], "category": "car", "mask": wrong_grid}]}),
            "masks are 33x77 but the image is displayed at 480x640",
        ),
        "polygon": (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "car", "polygon": [[1, 2], [3, NaN]]}]}',
            "objects[0].polygon must be [[x, y], ...]",
        ),
        "keypoint": (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "car", "keypoints": [{"x": 1}]}]}',
            "objects[0].keypoints[0] must be {label, x, y, score}",
        ),
        "choices": (
            '{"objects": [], "choices": [{"label": "day", "score": "sure"}]}',
            "choices[0] must be {label, score} with a finite score",
        ),
        "objchoices": (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "car", "choices": "parked"}]}',
            "objects[0].choices must be a list, got str",
        ),  # a detection's own choices
        "objchoicelabel": (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "car", "choices": [{"label": 7}]}]}',
            choice,
        ),
        "objchoicenan": (
            '{"objects": [{"bbox": [1, 2, 3, 4], "category": "car", '
            '"choices": [{"label": "parked", "score": NaN}]}]}',
            choice,
        ),
        "emptybox": (
            '{"objects": [{"bbox": [10, 10, 10, 40], "category": "car"}]}',
            "box [10, 10, 10, 40] has no area",
        ),  # no width
        "offimage": (
            '{"objects": [{"bbox": [5000, 5000, 6000, 6000], "category": "car"}]}',
            "box [5000, 5000, 6000, 6000] is outside the image",
        ),  # off it
        "logit": (
            '{"objects": [{"bbox": [1, 2, 30, 40], "category": "car", "score": 7}]}',
            "score 7 is outside [0, 1]",
        ),  # not [0, 1]
        "negative": (
            '{"objects": [{"bbox": [1, 2, 30, 40], "category": "car", "score": -5}]}',
            "score -5 is outside [0, 1]",
        ),
    }
    for stem, (body, _) in bad_raw.items():
        _raw(folder, stem, body)
    _raw(folder, "bom", "\ufeff" + good_raw)  # a BOM before valid JSON: fine
    _raw(folder, "inverted", '{"objects": [{"bbox": [60, 50, 10, 10], "category": "person"}]}')  # ordered
    _raw(folder, "outside", '{"objects": [{"bbox": [-20, -5, 50, 40], "category": "person"}]}')  # clipped
    (folder / "twin.jpg").write_bytes(SAMPLES[2].data)  # twin.jpg and twin.png both claim twin.json
    (folder / "twin.png").write_bytes(encode_image(Image.new("RGB", (20, 10)), "PNG"))
    (folder / "twin.json").write_text(good_raw)

    done = run_prelabel(
        "convert",
        "--input-dir",
        "in",
        "--config",
        "labeling.xml",
        "--tasks",
        "tasks.json",
        "--errors-csv",
        "errors.csv",
        cwd=_with_config(tmp_path),
    )
    _clean(done, 1)
    errors = _rows(tmp_path / "errors.csv")
    ambiguous = "ambiguous raw file in/twin.json: 1 other image(s) of the same stem claim it"
    expected = {
        **{name: why for name, (_, why) in bad_images.items()},
        **{f"{stem}.jpg": why for stem, (_, why) in bad_raw.items()},
        "twin.jpg": ambiguous,
        "twin.png": ambiguous,
    }
    assert set(errors) == set(expected), sorted(set(errors) ^ set(expected))
    wrong = {name: errors[name] for name, why in expected.items() if why not in errors[name]}
    assert wrong == {}, wrong  # each failed for its own reason
    named = {name for name in errors if errors[name].startswith((name, f"in/{Path(name).stem}.json"))}
    assert named == set(errors) - {"twin.jpg", "twin.png"}  # each row names its image or raw file
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    fine = {"bom.jpg", "inverted.jpg", "outside.jpg"}
    assert len(tasks) == 7  # the four samples, the BOM file, the two boxes made sane; nothing else
    assert {t["data"]["image"].rsplit("=", 1)[-1] for t in tasks} == {s.name for s in SAMPLES} | fine
    by_name = {t["data"]["image"].rsplit("=", 1)[-1]: t for t in tasks}
    boxes = {name: by_name[name]["predictions"][0]["result"][0] for name in ("inverted.jpg", "outside.jpg")}
    width, height = boxes["inverted.jpg"]["original_width"], boxes["inverted.jpg"]["original_height"]
    for name, (x1, y1, x2, y2) in {"inverted.jpg": (10, 10, 60, 50), "outside.jpg": (0, 0, 50, 40)}.items():
        value = boxes[name]["value"]
        assert (value["x"], value["y"]) == pytest.approx((x1 / width * 100, y1 / height * 100))
        assert (value["width"], value["height"]) == pytest.approx(
            ((x2 - x1) / width * 100, (y2 - y1) / height * 100)
        )


def _with_config(folder: Path) -> Path:
    (folder / "labeling.xml").write_text(LABEL_CONFIG)
    return folder


def test_ingest_corpus_url_lists(tmp_path: Path) -> None:
    name = SAMPLES[0].name
    with serve(Site({s.name: s.data for s in SAMPLES})) as site:
        good = [f"{site.url}/img/{s.name}" for s in SAMPLES]
        bad = {
            "/etc/hostname": "local path",  # a local file named by a remote list
            "file:///etc/passwd": "unsupported scheme",  # another scheme
            "ftp://example.org/x.jpg": "unsupported scheme",
            "http://[::1/x.jpg": "malformed URL",  # broken IPv6 literal
            "http://example.org:99999/x.jpg": "malformed URL",  # port out of range
            "http://exa\x01mple.org/x.jpg": "control characters",  # a control character
            f"{site.url}/missing/{name}": "HTTP 404",  # not found
            f"{site.url}/html/{name}": "not an image",  # a login page
            f"{site.url}/truncated/{name}": "failed after",  # body cut short
            f"{site.url}/redirect/{name}": "private or loopback",  # steered onto this machine
        }
        listing = tmp_path / "urls.txt"
        listing.write_text("\n".join([*good, good[0], *bad]) + "\n")  # good[0] listed twice
        done = run_prelabel(
            "ingest",
            "--source",
            "urls.txt",
            "--manifest",
            "m.csv",
            cwd=tmp_path,
            env={"PRELABEL_LS_URL": "http://localhost:1"},
        )
    _clean(done, 1)
    errors = _rows(tmp_path / "m_errors.csv", names=False)
    for uri, text in bad.items():
        assert text in errors.get(uri, ""), (uri, errors.get(uri))
    assert len(errors) == len(bad)
    manifest = (tmp_path / "m.csv").read_text()
    assert all(url in manifest for url in good) and manifest.count(good[0]) == 1
    duplicates = (tmp_path / "m_duplicates.csv").read_text()
    assert f"{good[0]},{good[0]},,listed again" in duplicates


def test_ingest_corpus_rest_api_that_ignores_the_offset(tmp_path: Path) -> None:
    records = [{"image_url": f"http://127.0.0.1:1/img/{i}.jpg", "species": "oak"} for i in range(3)]
    with serve(Site({}, records=records)) as site:
        done = run_prelabel(
            "ingest",
            "--source",
            f"{site.url}/api/stuck",
            "--url-path",
            "trees[].image_url",
            "--manifest",
            "m.csv",
            cwd=tmp_path,
        )
        assert site.hits["/api/stuck"] == 2  # the second page repeated the first: stopped
    _clean(done, 1)
    assert "ignores 'offset'" in (tmp_path / "m_errors.csv").read_text()


def test_ingest_corpus_videos(tmp_path: Path) -> None:
    from tests.unit.ingest.test_ingest import _make_video

    videos = tmp_path / "videos"
    (videos / "a").mkdir(parents=True)
    _make_video(videos / "a" / "cam.mp4", seconds=1)
    _make_video(videos / "a_cam.mp4", seconds=1)  # its frames would be named like a/cam.mp4's
    (videos / "empty.mp4").write_bytes(b"")  # 0 bytes
    done = run_prelabel(
        "ingest", "--source", "videos", "--video-fps", "1", "--manifest", "v.csv", cwd=tmp_path
    )
    _clean(done, 1)
    errors = _rows(tmp_path / "v_errors.csv")
    assert set(errors) == {"a_cam.mp4", "empty.mp4"}, errors
    assert "clash" in errors["a_cam.mp4"] and "cannot decode" in errors["empty.mp4"]
    assert "a_cam_0.jpg" in (tmp_path / "v.csv").read_text()  # a/cam.mp4's frames, kept


def test_a_bad_cache_entry_is_a_miss_and_is_rewritten(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for sample in SAMPLES:
        (images / sample.name).write_bytes(sample.data)
    args = ("infer", "--input-dir", "images", "--model", "ocr", "--output-dir", "raw", "--cache-dir", "cache")
    _clean(run_prelabel(*args, cwd=tmp_path), 0)
    entries = sorted(p for p in (tmp_path / "cache").rglob("*.json") if "markers" not in p.parts)
    assert len(entries) == 4
    entries[0].write_text('{"objects": [{"bbox": "wrong shape"}]}')  # valid JSON, wrong shape
    again = run_prelabel(*args, cwd=tmp_path)
    _clean(again, 0)
    assert "4 images: 4 raw files, 3 from cache, 1 inferred, 0 failed" in again.stdout
    assert "wrong shape" not in entries[0].read_text()  # rewritten


@pytest.mark.parametrize(
    ("file", "body", "says"),
    [
        (
            "bomb.yaml",
            "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b]\n",
            "aliases",
        ),  # a YAML alias bomb
        ("nested.yaml", "car:\n  deep:\n    deeper: x\n", "nested too deep"),  # not flat
        ("lists.json", '{"car": ["vehicle"]}', "must be a string"),  # a value that is not a label
        ("text.json", "not json at all", "not valid JSON"),  # not JSON
    ],
)
def test_bad_label_maps_are_one_line(tmp_path: Path, file: str, body: str, says: str) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / file).write_text(body)
    done = run_prelabel(
        "convert",
        "--input-dir",
        "in",
        "--config",
        "labeling.xml",
        "--label-map",
        file,
        cwd=_with_config(tmp_path),
    )
    _clean(done, 2)
    assert says in done.stderr and len(done.stderr.strip().splitlines()) <= 3, done.stderr


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("<View><Image name='i' value='$image'>", "labeling config"),  # unclosed XML
        (
            '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]><View>&x;</View>',
            "labeling config",
        ),  # an external entity: never resolved
        ("<View><Image name='i' value='$image'/></View>", "RectangleLabels"),  # nothing to fill
    ],
)
def test_bad_labeling_configs_are_one_line(tmp_path: Path, body: str, says: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / SAMPLES[0].name).write_bytes(SAMPLES[0].data)
    save_raw_file(folder / "scene_1_dinox_preannot.json", SAMPLES[0].detections)
    (tmp_path / "bad.xml").write_text(body)
    done = run_prelabel("convert", "--input-dir", "in", "--config", "bad.xml", cwd=tmp_path)
    _clean(done, 2)
    assert says in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("url,name\nx.jpg,x\n", "'uri' column"),  # no uri column
        ("uri,width,height\nx.jpg," + "9" * 400 + ",10\n", "whole numbers"),  # a 400-digit width
        ("uri\n" + "x" * 200_000 + "\n", "not a readable CSV"),  # a cell past the CSV field limit
    ],
)
def test_bad_manifests_are_one_line(tmp_path: Path, body: str, says: str) -> None:
    (tmp_path / "m.csv").write_text(body)
    done = run_prelabel("infer", "--manifest", "m.csv", "--model", "ocr", "--output-dir", "raw", cwd=tmp_path)
    _clean(done, 2)
    assert says in done.stderr and len(done.stderr.strip().splitlines()) <= 3, done.stderr


def test_a_manifest_keeps_cells_a_spreadsheet_would_run(tmp_path: Path) -> None:
    from prelabel.ingest.manifest import ManifestRow, read_manifest, write_manifest

    rows = [ManifestRow("=HYPERLINK(1)", "=x", "", 1, 1, {"note": "@SUM(A1)", "plain": "-3"})]
    write_manifest(tmp_path / "m.csv", rows)
    raw = (tmp_path / "m.csv").read_text()
    assert "'=HYPERLINK(1)" in raw and "'@SUM(A1)" in raw  # escaped on disk
    assert read_manifest(tmp_path / "m.csv") == rows  # and read back as written


def test_nothing_escapes_an_export_folder(tmp_path: Path) -> None:
    # A URL whose path is empty and whose query holds ../: the source chose that name.
    with serve(Site({s.name: s.data for s in SAMPLES})) as site:
        hostile = f"{site.url}/?f=../../../evil.jpg"
        (tmp_path / "m.csv").write_text(f"uri\n{hostile}\n")
        done = run_prelabel(
            "export",
            "--manifest",
            "m.csv",
            "--model",
            "ocr",
            "--to",
            "out/export",
            "--with-images",
            "--output-dir",
            "out/report",
            cwd=tmp_path,
        )
    _clean(done, 0)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    outside = [p for p in written if not p.is_relative_to(tmp_path / "out") and p.name != "m.csv"]
    assert outside == [], outside
    images = list((tmp_path / "out" / "export" / "images").iterdir())
    assert len(images) == 1 and images[0].name.endswith("evil.jpg") and ".." not in images[0].name
    coco = json.loads(next((tmp_path / "out" / "export").rglob("*.json")).read_text())
    assert coco["images"][0]["source"] == hostile  # no credentials in it: kept as given
