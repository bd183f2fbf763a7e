"""Orchestration overhead: ``preannotate`` over 10,000 images with the model cost taken out.

Question: what does prelabel itself cost per image (reading, hashing, cache lookups,
matching, building and posting predictions, Prefect task runs), and how long does a full
rerun of a finished project take? Goals: <= 5 ms per image; rerun <= 60 s.
Method: ``--images`` small PNGs (distinct bytes) in a folder, one task each in a fresh
project of the real Label Studio (referenced as ``s3://`` keys with the same names), and
every image's raw prediction (3 boxes with text) already in the cache under the OCR
model's signature: the model is never called. Timed: a dry run (everything but the
POSTs: prelabel's own overhead), a first ``preannotate`` that posts everything (adds
Label Studio's time to store 10,000 predictions, on the same 2 cores), then a full rerun
that must post nothing. Prefect runs a temporary local
server; the flow runs with ``batch_size`` 500 (20 batches: 40 task runs in all).
Command: ``.venv/bin/python benchmarks/orchestration.py`` (starts a local Label Studio).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from prelabel.core.images import sha256_bytes
from prelabel.ingest.samples import LABEL_CONFIG
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.server import start_label_studio
from prelabel.predict.models import create_model
from prelabel.records import Detections
from prelabel.store.cache import LocalCache


def _png(i: int) -> bytes:
    pixels = np.full((24, 32, 3), i % 251, np.uint8)
    pixels[0, 0] = [i & 255, (i >> 8) & 255, (i >> 16) & 255]  # distinct bytes per image
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--ls-url", default=None, help="a running Label Studio (key: PRELABEL_LS_API_KEY)")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.params import PreannotateParams
    from flows.preannotate import preannotate

    print(f"machine: {platform.machine()} python {platform.python_version()}; {args.images:,} images")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        images, cache = root / "images", LocalCache(root / "cache")
        images.mkdir()
        signature = create_model("ocr").signature()
        detections = Detections(
            xyxy=[[1, 1, 10, 8], [12, 2, 30, 9], [2, 12, 20, 22]],
            scores=[0.9, 0.8, 0.7],
            labels=("text",) * 3,
            texts=("a", "b", "c"),
        )
        for i in range(args.images):
            data = _png(i)
            (images / f"img_{i:06d}.png").write_bytes(data)
            cache.put(sha256_bytes(data), signature, detections)
        server = None if args.ls_url else start_label_studio(root / "ls")
        url = args.ls_url or server.url  # type: ignore[union-attr]
        key = os.environ["PRELABEL_LS_API_KEY"] if args.ls_url else server.legacy_token.get_secret_value()  # type: ignore[union-attr]
        try:
            with LabelStudioClient(url, key) as client:
                project = client.create_project("prelabel orchestration benchmark", LABEL_CONFIG)
                names = sorted(p.name for p in images.iterdir())
                for start in range(0, len(names), 2000):
                    client.import_tasks(
                        project.id,
                        [{"data": {"image": f"s3://bench/{n}"}} for n in names[start : start + 2000]],
                    )
            os.environ["PRELABEL_LS_URL"] = url
            os.environ["PRELABEL_LS_API_KEY"] = key
            params = PreannotateParams(
                project_id=project.id,
                input_dir=str(images),
                model="ocr",
                cache_dir=str(root / "cache"),
                model_version="bench",
                batch_size=args.batch_size,
                output_dir=str(root / "out"),
                unmatched_csv=str(root / "out" / "unmatched_labels.csv"),
                contact_sheet_size=0,
            )
            start = time.perf_counter()
            dry = preannotate(params.model_copy(update={"dry_run": True}))
            dry_s = time.perf_counter() - start
            start = time.perf_counter()
            first = preannotate(params)
            first_s = time.perf_counter() - start
            start = time.perf_counter()
            rerun = preannotate(params)
            rerun_s = time.perf_counter() - start
        finally:
            if server is not None:
                server.stop()
    expected = (args.images, args.images, 0, 0, args.images)
    if (dry.posted, first.posted, first.inferred, rerun.posted, rerun.skipped) != expected:
        raise SystemExit(f"unexpected counts: dry run {dry}, first {first}, rerun {rerun}")
    print(f"dry run (everything but the POSTs): {dry_s:.1f} s = {1000 * dry_s / args.images:.2f} ms/image")
    per_image = 1000 * first_s / args.images
    print(f"first run (all from cache, all posted): {first_s:.1f} s = {per_image:.2f} ms/image")
    print(f"full rerun (nothing to do): {rerun_s:.1f} s")


if __name__ == "__main__":
    main()
