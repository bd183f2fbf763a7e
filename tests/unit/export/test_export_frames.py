"""Export without servers: images as displayed in all eight EXIF orientations, ids that do not
depend on who exported which batch, and resume from the per-batch key index."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prelabel.convert.masks import coco_to_mask, mask_to_coco
from prelabel.core.images import load_image
from prelabel.export.batches import ExportPlan, batch_shards, export_items
from prelabel.export.targets import LocalStore, index_key
from prelabel.predict.models import create_model
from prelabel.records import Detections, save_raw_file

# The inverse of each orientation as a Pillow transpose: stored = displayed.transpose(...)
STORE_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
RED = (220, 20, 20)


def _red(pixels: np.ndarray) -> np.ndarray:
    return (pixels[..., 0] > 150) & (pixels[..., 2] < 100)


def oriented_photo(folder: Path, orientation: int) -> Path:
    """``o<orientation>.jpg``: a red block 10 + orientation px from the left on blue, as
    displayed (120x80), stored rotated or flipped with the EXIF tag that shows it upright."""
    shown = Image.new("RGB", (120, 80), (20, 40, 200))
    shown.paste(RED, (10 + orientation, 12, 50 + orientation, 40))
    stored = shown.transpose(STORE_AS[orientation]) if orientation != 1 else shown
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = folder / f"o{orientation}.jpg"
    stored.save(path, "JPEG", quality=98, exif=exif.tobytes())
    return path


def _photos(folder: Path) -> list[Path]:
    """One JPEG per orientation: a red block off-centre on blue, as displayed (120x80), stored
    rotated or flipped with the EXIF tag that shows it upright; raw files on the displayed grid."""
    folder.mkdir()
    paths = []
    for orientation in range(1, 9):
        path = oriented_photo(folder, orientation)
        loaded = load_image(path)
        assert loaded.rgb.size == (120, 80)
        mask = _red(loaded.to_array()).astype(np.uint8)
        rows, cols = np.nonzero(mask)
        box = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
        found = Detections(xyxy=[box], scores=[0.9], labels=["block"], masks=(mask_to_coco(mask),))
        save_raw_file(folder / f"o{orientation}_dinox_preannot.json", found)
        paths.append(path)
    return paths


def _export(paths: list[Path], target: Path, **plan: object) -> tuple[LocalStore, dict, object]:
    store = LocalStore(target)
    export_plan = ExportPlan(batch_size=8, categories=("block",), with_images=True, **plan)  # type: ignore[arg-type]
    report = export_items(
        store,
        export_plan,
        1,
        [str(p) for p in paths],
        create_model("raw-files"),
        None,
        export_plan.category_ids(),
    )
    return store, json.loads((target / "coco" / "batch_00001.json").read_bytes()), report


@pytest.mark.parametrize("keep_original", [False, True])
def test_every_orientation_matches_its_pixels_read_without_exif(tmp_path: Path, keep_original: bool) -> None:
    paths = _photos(tmp_path / "photos")
    _, coco, report = _export(paths, tmp_path / "out", keep_original_images=keep_original)
    assert not report.errors and len(coco["images"]) == 8 == len(coco["annotations"])
    for image in coco["images"]:
        source = Path(image["source"])
        data = (tmp_path / "out" / image["file_name"]).read_bytes()
        written = Image.open(io.BytesIO(data))  # no exif_transpose: as training loaders read
        assert written.size == (image["width"], image["height"]), image
        orientation = image["source_orientation"]
        if keep_original:
            assert data == source.read_bytes() and image["image"] == "original"
        elif orientation == 1:
            assert data == source.read_bytes() and image["image"] == "copied"
        else:
            assert image["image"] == "oriented" and written.getexif().get(0x0112) is None
            assert written.size == (120, 80)
        assert image["sha256"] != image["source_sha256"] or data == source.read_bytes()
        pixels = np.asarray(written.convert("RGB"))
        (entry,) = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        mask = coco_to_mask(entry["segmentation"]).astype(bool)
        png = np.asarray(Image.open(tmp_path / "out" / entry["mask_file"])) > 0
        assert np.array_equal(png, mask) and mask.shape == pixels.shape[:2]
        red = _red(pixels)
        assert red[mask].mean() > 0.95, (orientation, red[mask].mean())  # the mask lies on the object
        assert mask[red].mean() > 0.95, (orientation, mask[red].mean())  # and covers it
        x, y, w, h = entry["bbox"]
        rows, cols = np.nonzero(red)
        assert abs(x - cols.min()) <= 1 and abs(y - rows.min()) <= 1
        assert abs(x + w - cols.max() - 1) <= 1 and abs(y + h - rows.max() - 1) <= 1


def test_ids_do_not_depend_on_who_exported_which_batch(tmp_path: Path) -> None:
    paths = [str(p) for p in _photos(tmp_path / "photos")]
    model = create_model("raw-files")
    plan = ExportPlan(batch_size=3, categories=("block", "other"), with_images=True)
    # one process, batches in order; "workers", batches in another order
    shards = batch_shards(len(paths), 3, 4)
    assert shards == [(1, 0, 6), (3, 6, 8)]
    for folder, order in (("one", [1, 2, 3]), ("many", [3, 1, 2])):
        for number in order:
            batch = paths[(number - 1) * 3 : number * 3]
            export_items(LocalStore(tmp_path / folder), plan, number, batch, model, None, plan.category_ids())
    one = {
        p.relative_to(tmp_path / "one"): p.read_bytes() for p in (tmp_path / "one").rglob("*") if p.is_file()
    }
    many = {
        p.relative_to(tmp_path / "many"): p.read_bytes()
        for p in (tmp_path / "many").rglob("*")
        if p.is_file()
    }
    assert one == many and len(one) == 8 + 8 + 3 + 3 * 2  # images, masks, COCO, index + started
    coco = json.loads(one[Path("coco/batch_00003.json")])
    assert [i["id"] for i in coco["images"]] == [7, 8]
    assert [a["id"] for a in coco["annotations"]] == [70_001, 80_001]
    assert coco["categories"] == [{"id": 1, "name": "block"}, {"id": 2, "name": "other"}]


class CountingStore(LocalStore):
    """A folder that counts whole-object reads for content checks (hashing)."""

    hashed = 0

    def md5(self, key: str) -> str | None:
        CountingStore.hashed += 1
        return super().md5(key)


def test_resume_reads_the_index_and_checks_only_a_crashed_batch(tmp_path: Path) -> None:
    paths = [str(p) for p in _photos(tmp_path / "photos")]
    model, plan = create_model("raw-files"), ExportPlan(batch_size=4, categories=("block",), with_images=True)
    store = CountingStore(tmp_path / "out")

    def run() -> tuple[int, int]:
        written = skipped = 0
        for number in (1, 2):
            report = export_items(
                store, plan, number, paths[(number - 1) * 4 : number * 4], model, None, plan.category_ids()
            )
            written, skipped = written + report.written.total(), skipped + report.skipped.total()
        return written, skipped

    assert run() == (18, 0) and CountingStore.hashed == 0  # fresh: written blindly
    assert run() == (0, 18) and CountingStore.hashed == 0  # the index answers; nothing hashed
    # a crash in batch 2: its index never written, one mask and the COCO file not yet there
    (tmp_path / "out" / index_key(2)).unlink()
    (tmp_path / "out" / "coco" / "batch_00002.json").unlink()
    mask = sorted((tmp_path / "out" / "masks").glob("*"))[-1]
    mask.unlink()
    assert run() == (2, 16) and CountingStore.hashed == 9  # only batch 2's keys were checked
    assert mask.exists() and (tmp_path / "out" / index_key(2)).exists()
    # a file changed behind the index's back (another size) is written again
    image = next((tmp_path / "out" / "images").glob("*"))
    image.write_bytes(b"x")
    assert run() == (1, 17)
