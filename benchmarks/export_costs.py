"""Per-image costs of ``export`` on the CPU side, for the 100k projection in docs/benchmarks.md.

Question: what does one image cost, stage by stage, outside the model: read the bytes,
hash and read the header, decode (EXIF applied), and export (frames, COCO entry, ten PNG
masks, the image written as displayed, the batch's COCO JSON and index)? Are sideways
photos (EXIF 6: re-encoded at quality 95) much dearer than upright ones (copied)?
Method: ``--n`` 1080p JPEGs of smooth noise per orientation, each with ten blob masks as
COCO RLE (as a segmenting model returns them); each stage timed over all images, one
thread, to a local folder (the store's write is ``os.replace`` of a temp file).
Command: ``.venv/bin/python benchmarks/export_costs.py --n 20``.
"""

from __future__ import annotations

import argparse
import io
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

from prelabel.convert.masks import mask_to_coco
from prelabel.core.images import load_image, read_image_info
from prelabel.export.batches import ExportPlan, export_records
from prelabel.export.targets import LocalStore
from prelabel.predict.models.base import ImageItem
from prelabel.records import Detections, ModelSignature, PredictionRecord


def _photo(rng: np.random.Generator, orientation: int) -> bytes:
    small = rng.integers(0, 255, (68, 120, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((1920, 1080), Image.Resampling.BILINEAR)
    if orientation == 6:
        image = image.transpose(Image.Transpose.ROTATE_90)  # stored sideways, shown upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def _detections(rng: np.random.Generator) -> Detections:
    yy, xx = np.mgrid[:1080, :1920]
    boxes, masks = [], []
    for _ in range(10):
        cx, cy, r = rng.integers(200, 1700), rng.integers(200, 880), rng.integers(40, 180)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r).astype(np.uint8)
        boxes.append([cx - r, cy - r, cx + r, cy + r])
        masks.append(mask_to_coco(mask))
    return Detections(xyxy=boxes, scores=[0.9] * 10, labels=["thing"] * 10, masks=tuple(masks))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    found = _detections(rng)
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, Pillow {version('pillow')}, "
        f"numpy {np.__version__}; {args.n} 1080p JPEGs per orientation, 10 masks each"
    )
    for orientation in (1, 6):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for i in range(args.n):
                (folder / f"img_{i:04d}.jpg").write_bytes(_photo(rng, orientation))
            paths = sorted(folder.glob("*.jpg"))
            times: dict[str, float] = {}
            start = time.perf_counter()
            blobs = [p.read_bytes() for p in paths]
            times["read"] = time.perf_counter() - start
            start = time.perf_counter()
            infos = [read_image_info(b, p.name) for b, p in zip(blobs, paths, strict=True)]
            times["hash + header"] = time.perf_counter() - start
            start = time.perf_counter()
            for b, p in zip(blobs, paths, strict=True):
                load_image(b, p.name)
            times["decode (EXIF applied)"] = time.perf_counter() - start
            items = {str(p): ImageItem(str(p), b, i) for p, b, i in zip(paths, blobs, infos, strict=True)}
            records = [
                PredictionRecord(i, found, ModelSignature("bench"), uri=str(p))
                for p, i in zip(paths, infos, strict=True)
            ]
            plan = ExportPlan(batch_size=len(paths), categories=("thing",), with_images=True)
            start = time.perf_counter()
            export_records(
                LocalStore(folder / "out"),
                plan,
                1,
                [str(p) for p in paths],
                items,
                records,
                plan.category_ids(),
            )
            times["export (10 PNG masks, image, COCO)"] = time.perf_counter() - start
            print(f"orientation {orientation}:")
            for stage, seconds in times.items():
                print(f"  {stage:40s} {1000 * seconds / len(paths):8.2f} ms/image")


if __name__ == "__main__":
    main()
