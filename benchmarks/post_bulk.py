"""Posting predictions: prelabel's bulk import against one POST per task, same server, same run.

Question: how much faster is ``post_predictions`` (chunked ``/import/predictions``) than
posting each task's prediction with its own ``POST /api/predictions/``, the way the ML
backend examples and most scripts do? Goal: >= 10x at 2,000 tasks.
Method: one project, ``--tasks`` tasks; every task gets the same kind of prediction (10
boxes + 2 brush masks, 640x480) once per side under two model versions; wall time of each
side; Label Studio's own count of predictions checked afterwards.
Data: synthetic tasks (``s3://`` references) and predictions built by prelabel.
Command: ``.venv/bin/python benchmarks/post_bulk.py`` (starts a local Label Studio in a
temp dir, ~1 min), or ``--ls-url URL --api-key KEY`` for a running one.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from prelabel.convert.masks import mask_to_coco
from prelabel.core.images import ImageInfo
from prelabel.ingest.samples import LABEL_CONFIG
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.posting import post_predictions
from prelabel.labelstudio.predictions import build_batch
from prelabel.labelstudio.server import LABEL_STUDIO_VERSION, start_label_studio
from prelabel.records import Detections, PredictionRecord


def _detections(rng: np.random.Generator) -> Detections:
    x = rng.uniform(0, 560, 10)
    y = rng.uniform(0, 400, 10)
    boxes = np.stack([x, y, x + rng.uniform(10, 80, 10), y + rng.uniform(10, 80, 10)], axis=1)
    masks: list[dict[str, object] | None] = [None] * 10
    for i in range(2):
        mask = np.zeros((480, 640), np.uint8)
        x1, y1, x2, y2 = boxes[i].astype(int)
        mask[y1:y2, x1:x2] = 1
        masks[i] = mask_to_coco(mask)
    return Detections(
        xyxy=boxes, scores=rng.uniform(0.3, 1, 10), labels=("car",) * 5 + ("person",) * 5, masks=tuple(masks)
    )


def run(client: LabelStudioClient, tasks: int) -> dict[str, float]:
    project = client.create_project("prelabel post benchmark", LABEL_CONFIG)
    ids: list[int] = []
    for start in range(0, tasks, 1000):
        chunk = range(start, min(start + 1000, tasks))
        ids += client.import_tasks(project.id, [{"data": {"image": f"s3://bench/{i}.jpg"}} for i in chunk])
    rng = np.random.default_rng(0)
    info = ImageInfo("bench.jpg", "0" * 64, 640, 480, 1, 640, 480, "JPEG", "RGB")
    records = [PredictionRecord(image=info, detections=_detections(rng), task_id=t) for t in ids]
    batch = build_batch(records, project.config, LabelMap({"car": "civilian vehicle"}), "bulk")
    existing = {t.id: t.model_versions for t in client.iter_tasks(project.id)}

    start = time.perf_counter()
    report = post_predictions(client, project.id, batch.predictions, "bulk", existing)
    bulk = time.perf_counter() - start

    start = time.perf_counter()
    for task_id, prediction in batch.predictions.items():
        client.create_prediction({**prediction, "task": task_id, "model_version": "one-by-one"})
    single = time.perf_counter() - start

    counts = client.model_versions(project.id)
    if counts != {"bulk": tasks, "one-by-one": tasks} or report.created != tasks:
        raise SystemExit(f"unexpected prediction counts: {counts}, bulk created {report.created}")
    return {"tasks": tasks, "bulk_s": bulk, "single_s": single, "requests": report.requests}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--ls-url", default=None)
    parser.add_argument("--api-key", default=os.environ.get("PRELABEL_LS_API_KEY"))
    args = parser.parse_args()
    versions = f"python {platform.python_version()}; label-studio {LABEL_STUDIO_VERSION}"
    print(f"machine: {platform.machine()} {versions}")
    if args.ls_url:
        with LabelStudioClient(args.ls_url, args.api_key) as client:
            result = run(client, args.tasks)
    else:
        with tempfile.TemporaryDirectory() as folder:
            server = start_label_studio(Path(folder) / "data")
            try:
                with LabelStudioClient(server.url, server.legacy_token) as client:
                    result = run(client, args.tasks)
            finally:
                server.stop()
    print(f"tasks: {result['tasks']} (10 boxes + 2 masks each)")
    print(f"bulk import ({result['requests']:.0f} requests): {result['bulk_s']:.2f} s")
    print(f"one POST per task: {result['single_s']:.2f} s")
    print(f"ratio: {result['single_s'] / result['bulk_s']:.1f}x")


if __name__ == "__main__":
    main()
