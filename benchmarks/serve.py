"""The ML backend: prelabel serve against the example backends' way, same model, same server, one run.

Question: how fast does Label Studio get predictions from ``prelabel serve`` (one model per process
for its life, the prediction cache, a request's misses in one batch) compared with the way the
label-studio-ml-backend examples work (the model made again for every request, one task per
request, no cache)? Goals: a cached task answered in milliseconds; >= 5x the examples' throughput.
Method: one Label Studio project of ``--tasks`` uploaded images, one model (tiny random-weight DETR
by default, or ``--checkpoint DIR``, a saved DETR: the reload costs what loading its weights
costs), two backends on loopback in this process, each called over HTTP with Label Studio's
``/predict`` body:
- latency, one task per request, in turn: prelabel uncached (first sight of each image), prelabel
  cached (the same tasks again), the examples' way (no cache: every request is uncached);
- throughput under ``--concurrency`` requests in flight, one task each, on images neither side
  has seen (prelabel: the cache emptied first);
- and, for prelabel alone, the whole project in one request (what "Retrieve predictions" sends).
Both backends fetch the images from Label Studio with its key and convert with the same builder;
each answer is checked to hold one prediction per task before it counts.
Data: synthetic 640x480 JPEGs. Command: ``python -m benchmarks.serve`` (starts a local Label Studio
in a temp dir, ~1 min) or ``--ls-url URL`` with ``PRELABEL_LS_API_KEY``; the tests run it with
``--tasks 4``.
"""

from __future__ import annotations

import argparse
import io
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import uvicorn
from fastapi import Body, FastAPI
from PIL import Image, ImageDraw

from prelabel.core.images import read_image_info
from prelabel.core.settings import load_settings
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.predictions import build_prediction
from prelabel.labelstudio.server import free_port, start_label_studio
from prelabel.predict.models import create_model
from prelabel.predict.models.base import ImageItem
from prelabel.records import PredictionRecord
from prelabel.serve import create_app, load_serve_settings
from tests.support.random_models import DETR_LABELS, save_detr

LABELS = "".join(f'<Label value="{label}"/>' for label in DETR_LABELS.values())
CONFIG = (
    f'<View><Image name="image" value="$image"/>'
    f'<RectangleLabels name="label" toName="image">{LABELS}</RectangleLabels></View>'
)


def examples_app(client: LabelStudioClient, options: dict[str, Any]) -> FastAPI:
    """The examples' way: per request, the model made again and each task predicted alone."""
    app = FastAPI()
    config = client.get_project  # read per request too, as the examples parse the config each time

    @app.post("/predict")
    def predict(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        # a plain def: FastAPI runs it in its thread pool, so requests overlap as under the
        # examples' threaded servers (an async def would run them one at a time)
        project = config(int(str(body["project"]).split(".")[0]))
        results = []
        for task in body["tasks"]:
            model = create_model("detr", **options)  # a new instance: its weights load again
            data = client.request("GET", task["data"]["image"]).content
            item = ImageItem(uri=task["data"]["image"], data=data, info=read_image_info(data, "task.jpg"))
            (detections,) = model.predict([item])
            record = PredictionRecord(item.info, detections)  # type: ignore[arg-type]
            results.append(build_prediction(record, project.config, model_version="examples")[0])
        return {"results": results}

    return app


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def upload(
    client: LabelStudioClient, project: int, count: int, offset: int, folder: Path
) -> list[dict[str, Any]]:
    """``count`` distinct JPEGs uploaded; their tasks as Label Studio sends them."""
    rng = np.random.default_rng(offset)
    paths = []
    for number in range(offset, offset + count):
        image = Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
        ImageDraw.Draw(image).rectangle((100, 100, 300, 250), fill=(250, 250, 250))
        path = folder / f"bench_{number:05d}.jpg"
        path.write_bytes(_jpeg(image))
        paths.append(path)
    ids = set(client.upload_files(project, paths))
    return [{"id": t.id, "data": dict(t.data)} for t in client.iter_tasks(project) if t.id in ids]


def _jpeg(image: Image.Image) -> bytes:
    data = io.BytesIO()
    image.save(data, format="JPEG", quality=90)
    return data.getvalue()


# One client for every request, as Label Studio keeps one session: a client made per request spends
# about 70 ms making its TLS context, more than a cached answer takes.
HTTP = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=64))


def post(url: str, project: int, tasks: Sequence[dict[str, Any]]) -> float:
    """Seconds for one ``/predict`` of ``tasks``; an answer without one prediction per task fails."""
    started = time.perf_counter()
    answer = HTTP.post(f"{url}/predict", json={"tasks": list(tasks), "project": f"{project}.1"})
    took = time.perf_counter() - started
    answer.raise_for_status()
    results = answer.json()["results"]
    if len(results) != len(tasks) or not all(isinstance(r, dict) and "result" in r for r in results):
        raise SystemExit(f"{url}: expected {len(tasks)} predictions, got {str(results)[:200]}")
    return took


def latencies(url: str, project: int, tasks: Sequence[dict[str, Any]]) -> list[float]:
    return [post(url, project, [task]) for task in tasks]


def throughput(url: str, project: int, tasks: Sequence[dict[str, Any]], concurrency: int) -> float:
    """Tasks per second, one task per request, ``concurrency`` requests in flight."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda task: post(url, project, [task]), tasks))
    return len(tasks) / (time.perf_counter() - started)


def percentiles(seconds: Sequence[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms"


def run(
    client: LabelStudioClient, key: str, tasks: int, concurrency: int, checkpoint: Path, work: Path
) -> None:
    project = client.create_project("prelabel serve benchmark", CONFIG).id
    images = work / "images"
    images.mkdir()
    first = upload(client, project, tasks, 0, images)
    second = upload(client, project, tasks, 10_000, images)
    options = {"checkpoint": str(checkpoint), "threshold": 0.5, "device": "cpu"}
    ls = load_settings(ls_url=client.url, ls_api_key=key, cache_dir=work / "cache")
    served = load_serve_settings(model="detr", model_options=options, state_dir=work / "state", budget=90)
    rows: list[tuple[str, str]] = []
    with serving(create_app(served, ls)) as prelabel, serving(examples_app(client, options)) as examples:
        uncached = latencies(prelabel, project, first)
        cached = latencies(prelabel, project, first)
        reloaded = latencies(examples, project, first)
        rows += [
            ("prelabel serve, uncached", percentiles(uncached)),
            ("prelabel serve, cached", percentiles(cached)),
            ("examples' way (reload per request)", percentiles(reloaded)),
        ]
        shutil.rmtree(work / "cache")  # the second images are new to both
        ours = throughput(prelabel, project, second, concurrency)
        theirs = throughput(examples, project, second, concurrency)
        shutil.rmtree(work / "cache")
        whole = post(prelabel, project, [*first, *second])
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {platform.python_version()}, "
        f"prelabel {version('prelabel')}, torch {version('torch')}, "
        f"transformers {version('transformers')}, uvicorn {version('uvicorn')}"
    )
    print(f"model: DETR from {checkpoint}; Label Studio at {client.url}")
    print(f"/predict latency, one task per request, {tasks} tasks each:")
    for name, figures in rows:
        print(f"  {name:36s} {figures}")
    faster = statistics.median(reloaded) / statistics.median(cached)
    print(f"  cached vs the examples' way: {faster:.1f}x faster")
    print(f"throughput, {concurrency} requests in flight, one task each, {tasks} new tasks:")
    print(f"  prelabel serve                       {ours:8.1f} tasks/s")
    print(f"  examples' way (reload per request)   {theirs:8.1f} tasks/s")
    print(f"  ratio                                {ours / theirs:8.1f}x")
    print(
        f"prelabel serve, all {2 * tasks} tasks in one request (uncached): {whole:.2f} s, "
        f"{2 * tasks / whole:.1f} tasks/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=40, help="Tasks per measurement.")
    parser.add_argument("--concurrency", type=int, default=16, help="Requests in flight for throughput.")
    parser.add_argument("--checkpoint", type=Path, help="A saved DETR (default: a tiny random one).")
    parser.add_argument("--ls-url", help="A running Label Studio (its key: PRELABEL_LS_API_KEY).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prelabel-serve-bench-") as temp:
        work = Path(temp)
        checkpoint = args.checkpoint or save_detr(work / "detr")
        if args.ls_url:
            key = load_settings(ls_url=args.ls_url).ls_key_for(args.ls_url).get_secret_value()
            with LabelStudioClient(args.ls_url, key) as client:
                run(client, key, args.tasks, args.concurrency, checkpoint, work)
            return
        server = start_label_studio(work / "label-studio")
        try:
            key = server.legacy_token.get_secret_value()
            with LabelStudioClient(server.url, key) as client:
                run(client, key, args.tasks, args.concurrency, checkpoint, work)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
