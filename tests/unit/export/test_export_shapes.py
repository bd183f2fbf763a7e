"""Export of polygons, keypoints and choices from raw files: on the exported pixel grid in all
eight EXIF orientations (displayed, and stored with keep_original_images), exactly as COCO
writes them, loadable by pycocotools, and independent of which batches a process exported."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO

from prelabel.convert.masks import mask_to_coco
from prelabel.export.batches import ExportPlan, export_items
from prelabel.export.shapes import COCO_SKELETON
from prelabel.export.targets import LocalStore
from prelabel.predict.models import create_model
from prelabel.records import COCO_KEYPOINTS
from tests.unit.export.test_export_frames import _red, oriented_photo

LABEL_MAP = {"stop": "stop sign", "outdoor": "outside", "tail_tip": "tail"}


def _corners(o: int) -> list[list[float]]:
    return [[10 + o, 12], [50 + o, 12], [50 + o, 40], [10 + o, 40]]


def _photos(folder: Path) -> list[Path]:
    """One JPEG per orientation, displayed 120x80 with a red block (as in test_export_frames);
    its raw file on the displayed grid: the block as a polygon with a nose keypoint on it and a
    tail keypoint off it, choices for the block and the image, and a masked sign with a polygon."""
    folder.mkdir()
    paths = []
    for o in range(1, 9):
        path = oriented_photo(folder, o)
        sign = np.zeros((80, 120), np.uint8)
        sign[50:70, 80:100] = 1
        raw = {
            "objects": [
                {
                    "bbox": [10 + o, 12, 50 + o, 40],
                    "score": 0.9,
                    "category": "block",
                    "polygon": _corners(o),
                    "keypoints": [
                        {"label": "nose", "x": 30.5 + o, "y": 26.5, "score": 0.75},
                        {"label": "tail_tip", "x": 100.5, "y": 60.5, "score": 0.25},
                    ],
                    "choices": [{"label": "stop", "score": 0.8}, {"label": "red", "score": 0.5}],
                },
                {
                    "bbox": [80, 50, 100, 70],
                    "score": 0.6,
                    "category": "sign",
                    "mask": mask_to_coco(sign),
                    "polygon": [[80, 50], [100, 50], [100, 70]],
                },
            ],
            "choices": [{"label": "outdoor", "score": 0.7}],
        }
        (folder / f"o{o}_dinox_preannot.json").write_text(json.dumps(raw))
        paths.append(path)
    return paths


def _export(paths: list[Path], target: Path, keep_original: bool) -> tuple[dict[str, Any], COCO]:
    plan = ExportPlan(
        batch_size=8,
        categories=("block", "sign"),
        label_map=LABEL_MAP,
        with_images=True,
        keep_original_images=keep_original,
    )
    uris = [str(p) for p in paths]
    report = export_items(
        LocalStore(target), plan, 1, uris, create_model("raw-files"), None, plan.category_ids()
    )
    assert not report.errors
    path = target / "coco" / "batch_00001.json"
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        loaded = COCO(str(path))
    return json.loads(path.read_bytes()), loaded


@pytest.mark.parametrize("keep_original", [False, True])
def test_polygons_and_keypoints_lie_on_their_pixels_in_every_orientation(
    tmp_path: Path, keep_original: bool
) -> None:
    coco, loaded = _export(_photos(tmp_path / "photos"), tmp_path / "out", keep_original)
    assert len(coco["images"]) == 8 and len(coco["annotations"]) == 16
    for image in coco["images"]:
        written = Image.open(tmp_path / "out" / image["file_name"])  # no exif_transpose: as loaders read
        red = _red(np.asarray(written.convert("RGB")))
        block, sign = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        shape = loaded.annToMask(loaded.anns[block["id"]]).astype(bool)  # pycocotools rasterises the polygon
        assert red[shape].mean() > 0.95 and shape[red].mean() > 0.9, image["source_orientation"]
        rle = coco_mask.merge(coco_mask.frPyObjects(block["segmentation"], image["height"], image["width"]))
        assert block["area"] == int(coco_mask.area(rle)) == int(shape.sum())
        nose, tail = block["keypoints"][0:3], block["keypoints"][-3:]
        assert red[int(nose[1]), int(nose[0])] and not red[int(tail[1]), int(tail[0])]
        assert nose[2] == tail[2] == 2 and block["num_keypoints"] == 2
        # the sign's mask stays its segmentation; its polygon comes beside on the same grid
        assert isinstance(sign["segmentation"], dict) and "keypoints" not in sign
        mask = loaded.annToMask(loaded.anns[sign["id"]]).astype(bool)
        triangle = coco_mask.decode(coco_mask.frPyObjects(sign["polygon"], image["height"], image["width"]))
        assert mask[triangle[..., 0] > 0].mean() > 0.95 and 150 < triangle.sum() < 250  # half the square


def _block(coco: dict[str, Any], orientation: int) -> dict[str, Any]:
    (image,) = [i for i in coco["images"] if i["source_orientation"] == orientation]
    return next(a for a in coco["annotations"] if a["image_id"] == image["id"] and a["category_id"] == 1)


def _flat(points: list[tuple[float, float]]) -> list[float]:
    return [v for point in points for v in point]


def test_shapes_are_written_exactly_as_coco_has_them(tmp_path: Path) -> None:
    paths = _photos(tmp_path / "photos")
    coco, _ = _export(paths, tmp_path / "displayed", keep_original=False)
    names = [*COCO_KEYPOINTS, "tail"]
    assert coco["categories"] == [
        {"id": 1, "name": "block", "keypoints": names, "skeleton": [list(p) for p in COCO_SKELETON]},
        {"id": 2, "name": "sign"},
    ]
    (image,) = [i for i in coco["images"] if i["source_orientation"] == 6]
    assert image["attributes"] == {"choices": ["outside"]} and image["choice_scores"] == [0.7]
    block = _block(coco, 6)
    keypoints = [0] * 3 * len(names)
    keypoints[0:3], keypoints[-3:] = [36.5, 26.5, 2], [100.5, 60.5, 2]
    scores = [0] * len(names)
    scores[0], scores[-1] = 0.75, 0.25
    ring = [[16, 12, 56, 12, 56, 40, 16, 40]]
    area = int(coco_mask.area(coco_mask.frPyObjects(ring, 80, 120))[0])
    assert block == {
        "id": image["id"] * 10_000 + 1,
        "image_id": image["id"],
        "category_id": 1,
        "score": 0.9,
        "bbox": [16.0, 12.0, 40.0, 28.0],
        "iscrowd": 0,
        "segmentation": ring,
        "area": area,
        "keypoints": keypoints,
        "num_keypoints": 2,
        "keypoint_scores": scores,
        "attributes": {"choices": ["stop sign", "red"]},
        "choice_scores": [0.8, 0.5],
    }
    assert 1000 < area < 1250  # about the 40 x 28 block
    sign = next(a for a in coco["annotations"] if a["image_id"] == image["id"] and a["category_id"] == 2)
    assert sign["polygon"] == [[80, 50, 100, 50, 100, 70]] and sign["area"] == 400  # the mask's

    # the stored grid: orientation 6 (rotated 90 degrees) is (x, y) -> (y, 120 - x); 3 is (120 - x, 80 - y)
    coco, _ = _export(paths, tmp_path / "stored", keep_original=True)
    for orientation, move in ((6, lambda x, y: (y, 120 - x)), (3, lambda x, y: (120 - x, 80 - y))):
        block = _block(coco, orientation)
        assert block["segmentation"] == [_flat([move(x, y) for x, y in _corners(orientation)])]
        assert block["keypoints"][0:3] == [*move(30.5 + orientation, 26.5), 2]
        assert block["keypoints"][-3:] == [*move(100.5, 60.5), 2]
        assert block["attributes"] == {"choices": ["stop sign", "red"]}


def test_keypoint_names_do_not_depend_on_earlier_batches(tmp_path: Path) -> None:
    """A category's names come from its batch alone, so batches exported in any order (shards)
    write the same bytes; a category without COCO's names lists only its own, sorted."""
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for i, names in enumerate((["nose"], ["wing", "beak"])):
        Image.new("RGB", (40, 30), (i, 0, 0)).save(folder / f"p{i}.png")
        points = [{"label": n, "x": 5.0 + j, "y": 6.0} for j, n in enumerate(names)]
        raw = {"objects": [{"bbox": [1, 2, 20, 20], "category": "bird", "keypoints": points}]}
        (folder / f"p{i}.json").write_text(json.dumps(raw))
        paths.append(str(folder / f"p{i}.png"))
    plan, model = ExportPlan(batch_size=1, categories=("bird",)), create_model("raw-files")
    for name, order in (("one", [1, 2]), ("many", [2, 1])):
        for number in order:
            export_items(
                LocalStore(tmp_path / name),
                plan,
                number,
                paths[number - 1 : number],
                model,
                None,
                plan.category_ids(),
            )
    files = {p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*.json")}
    assert files == {
        p.relative_to(tmp_path / "many"): p.read_bytes() for p in (tmp_path / "many").rglob("*.json")
    }
    second = json.loads(files[Path("coco/batch_00002.json")])
    assert second["categories"] == [{"id": 1, "name": "bird", "keypoints": ["beak", "wing"], "skeleton": []}]
    (entry,) = second["annotations"]
    assert entry["keypoints"] == [6.0, 6.0, 2, 5.0, 6.0, 2] and entry["keypoint_scores"] == [1.0, 1.0]


@pytest.mark.parametrize("where", ["box", "keypoint", "region choice", "image choice"])
def test_a_score_that_is_not_finite_is_the_images_error_row_and_the_json_stays_strict(
    tmp_path: Path, where: str
) -> None:
    """A model's NaN (float16 overflow, say) would have been written as NaN: not JSON."""
    from prelabel.records import Choice, Detections, Keypoint

    nan = float("nan")
    broken = Detections(
        xyxy=[[1, 1, 10, 10]],
        scores=[nan if where == "box" else 0.5],
        labels=["car"],
        keypoints=((Keypoint("nose", 5, 5, nan if where == "keypoint" else 0.5),),),
        region_choices=((Choice("red", nan if where == "region choice" else 0.5),),),
        choices=(Choice("day", nan if where == "image choice" else 0.5),),
    )
    report, coco = _export_beside_a_good_image(tmp_path / "out", broken)
    assert [(e.file, "not a finite number" in e.error) for e in report.errors] == [("broken.png", True)]
    assert [image["source"] for image in coco["images"]] == ["good.png"]
    assert [a["score"] for a in coco["annotations"]] == [0.7]


@pytest.mark.parametrize("where", ["box", "keypoint", "polygon"])
def test_a_coordinate_that_is_not_finite_is_the_images_error_row(tmp_path: Path, where: str) -> None:
    """A NaN corner or point failed the whole batch's strict JSON (and a NaN polygon vertex made
    pycocotools rasterise until memory ran out): now only its image fails."""
    from prelabel.records import Detections, Keypoint

    nan = float("nan")
    broken = Detections(
        xyxy=[[1, nan if where == "box" else 1, 10, 10]],
        scores=[0.5],
        labels=["car"],
        keypoints=((Keypoint("nose", nan if where == "keypoint" else 5, 5, 0.5),),),
        polygons=(((1, 1), (8, 1), (8, nan if where == "polygon" else 8)),),
    )
    report, coco = _export_beside_a_good_image(tmp_path, broken)
    assert [(e.file, "coordinate is not a finite number" in e.error) for e in report.errors] == [
        ("broken.png", True)
    ]
    assert [image["source"] for image in coco["images"]] == ["good.png"]


def _export_beside_a_good_image(out: Path, broken: Any) -> tuple[Any, dict[str, Any]]:
    """``broken`` (Detections) exported in one batch with a good image: the report and the
    batch's COCO JSON, read strictly (a NaN in it fails the test)."""
    from prelabel.core.images import read_image_info
    from prelabel.export.batches import export_records
    from prelabel.predict.models.base import ImageItem
    from prelabel.records import Detections, ModelSignature, PredictionRecord

    good = Detections(xyxy=[[2, 2, 12, 12]], scores=[0.7], labels=["car"])
    items, records = {}, []
    for name, found in (("broken.png", broken), ("good.png", good)):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), (9, 9, 9)).save(buffer, "PNG")
        info = read_image_info(buffer.getvalue(), name)
        items[name] = ImageItem(name, buffer.getvalue(), info)
        records.append(PredictionRecord(info, found, ModelSignature("m"), uri=name))
    plan = ExportPlan(batch_size=2)
    report = export_records(LocalStore(out), plan, 1, list(items), items, records, plan.category_ids())
    coco = json.loads((out / "coco" / "batch_00001.json").read_text(), parse_constant=_refuse)
    return report, coco


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} in the COCO JSON")
