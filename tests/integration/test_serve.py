"""The ML backend against the real Label Studio, called as Label Studio calls it: predictions through
the cache within the budget, the rest handed over once, clicks and boxes to masks, find-all, and a
corpus of malformed and hostile requests, each a 4xx while the server keeps serving."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.predict.models.prompted import Sam2Prompter
from tests.conftest import encode_image
from tests.support.cli import CliRun
from tests.support.ml_backend import HandedOver, ls_settings, ml_backend, serve_settings

pytestmark = pytest.mark.slow

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="text"/></RectangleLabels>
  <BrushLabels name="mask" toName="image"><Label value="text"/></BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true"><Label value="text"/></KeyPointLabels>
  <RectangleLabels name="find_all" toName="image" smart="true"><Label value="text"/></RectangleLabels>
</View>"""
AUTH = ("labelstudio", "basic-pass")
SECRET = "webhook-secret"


class Witness:
    """A loopback HTTP server that counts what it is asked: a host a request names, never fetched."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        witness = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                witness.hits.append(self.path + " " + str(self.headers.get("Authorization")))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                self.wfile.write(encode_image(Image.new("RGB", (8, 8)), "PNG"))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def text_images(folder: Path, count: int) -> list[Path]:
    """``count`` small images with a line of text each (distinct bytes: no cache hit between them)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(count):
        image = Image.new("RGB", (160, 64), "white")
        ImageDraw.Draw(image).text((8, 24), f"TEXT {number:03d}", fill="black")
        image.save(folder / f"text_{number:03d}.png")
        paths.append(folder / f"text_{number:03d}.png")
    return paths


class CountingSam2(Sam2Prompter):
    """SAM 2 that counts how often it encodes an image."""

    embedded = 0

    def embed(self, image: Any) -> Any:
        self.embedded += 1
        return super().embed(image)


@pytest.fixture(scope="module")
def backend(
    label_studio: LocalLabelStudio, tmp_path_factory: pytest.TempPathFactory, tiny_sam2: Path
) -> Iterator[tuple[str, HandedOver, CountingSam2]]:
    """One backend for the module: OCR, a tiny SAM 2, basic auth and a webhook secret."""
    root = tmp_path_factory.mktemp("serve")
    settings = serve_settings(
        root / "state",
        model="ocr",
        budget=20,
        basic_auth_user=AUTH[0],
        basic_auth_password=AUTH[1],
        webhook_secret=SECRET,
        max_body_bytes=64 * 1024,
    )
    handed, segmenter = HandedOver(), CountingSam2(str(tiny_sam2), device="cpu", dtype="float32")
    with ml_backend(settings, ls_settings(label_studio, root / "cache"), handed, segmenter) as url:
        yield url, handed, segmenter


@pytest.fixture
def text_project(ls_client: LabelStudioClient, tmp_path: Path) -> tuple[Project, list[dict[str, Any]]]:
    """A project with three text images, and its tasks as Label Studio sends them."""
    project = ls_client.create_project(f"serve {tmp_path.name[-20:]}", CONFIG)
    ls_client.upload_files(project.id, text_images(tmp_path / "images", 3))
    return project, [{"id": t.id, "data": dict(t.data)} for t in ls_client.iter_tasks(project.id)]


def call(url: str, path: str, body: Any = None, **extra: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, auth=extra.pop("auth", AUTH), timeout=60, **extra)


def test_predictions_come_from_the_model_once_then_from_the_cache(
    backend: tuple[str, HandedOver, CountingSam2],
    text_project: tuple[Project, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, handed, _ = backend
    project, tasks = text_project
    version = call(url, "/setup", {"project": f"{project.id}.1700000000", "schema": CONFIG}).json()
    assert version["model_version"].startswith("ocr-")
    request = {
        "tasks": tasks,
        "project": f"{project.id}.1700000000",
        "label_config": CONFIG,
        "params": {"login": None, "password": None, "context": None},
    }
    with caplog.at_level("INFO", logger="prelabel.serve"):
        first = call(url, "/predict", request)
        again = call(url, "/predict", request)
    assert first.status_code == 200, first.text
    results = first.json()["results"]
    assert len(results) == 3  # one per task, in order
    assert {r["model_version"] for r in results} == {version["model_version"]}
    for result in results:
        assert [r["from_name"] for r in result["result"]].count("label") >= 1  # a text line: a box
        assert {r["type"] for r in result["result"]} <= {"rectanglelabels"}  # no mask from OCR, no smart tool
    assert again.json() == first.json()
    assert "3 predicted (0 images from the cache, 3 inferred)" in caplog.text
    assert "3 predicted (3 images from the cache, 0 inferred)" in caplog.text
    assert handed.runs == []


def test_what_does_not_fit_the_budget_goes_to_one_run_and_is_not_answered_again(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    project = ls_client.create_project("serve budget", CONFIG)
    ls_client.upload_files(project.id, text_images(tmp_path / "images", 12))
    tasks = [{"id": t.id, "data": dict(t.data)} for t in ls_client.iter_tasks(project.id)]
    handed = HandedOver()
    settings = serve_settings(tmp_path / "state", model="ocr", budget=1.5)
    batches_of_two = ls_settings(label_studio, tmp_path / "cache", infer_batch_size=2)
    with ml_backend(settings, batches_of_two, handed) as url:
        request = {"tasks": tasks, "project": f"{project.id}.1"}
        started = time.monotonic()
        first = httpx.post(url + "/predict", json=request, timeout=60).json()["results"]
        took = time.monotonic() - started
        again = httpx.post(url + "/predict", json=request, timeout=60).json()["results"]
        while not handed.runs and time.monotonic() < started + 30:  # the run starts after the answer
            time.sleep(0.1)
    answered = [task["id"] for task, result in zip(tasks, first, strict=True) if result]
    assert len(first) == 12 and 0 < len(answered) < 12  # a batch of two runs, then the budget is spent
    assert took < 15
    ((project_id, given, version),) = handed.runs
    assert project_id == project.id and version.startswith("ocr-")
    assert sorted(given + answered) == sorted(t["id"] for t in tasks)  # every task: answered or handed over
    held = [task["id"] for task, result in zip(tasks, again, strict=True) if not result]
    assert set(held) >= set(given)  # a task a run holds is never answered here too
    assert len(handed.runs) == 1  # nor handed over again


def test_a_click_or_a_box_gives_the_objects_brush_and_features_are_made_once_per_image(
    backend: tuple[str, HandedOver, CountingSam2], text_project: tuple[Project, list[dict[str, Any]]]
) -> None:
    url, _, segmenter = backend
    project, tasks = text_project
    before = segmenter.embedded

    def interact(*context: dict[str, Any]) -> httpx.Response:
        return call(
            url,
            "/predict",
            {
                "tasks": tasks[:1],
                "project": f"{project.id}.1",
                "params": {"context": {"result": list(context)}},
            },
        )

    click = {
        "type": "keypointlabels",
        "from_name": "click",
        "is_positive": True,
        "value": {"x": 20, "y": 50, "width": 1, "keypointlabels": ["text"]},
    }
    box = {
        "type": "rectanglelabels",
        "from_name": "click",
        "value": {"x": 2, "y": 20, "width": 40, "height": 60, "rectanglelabels": ["text"]},
    }
    answers = [interact(click), interact({**click, "value": {**click["value"], "x": 30}}), interact(box)]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        (prediction,) = answer.json()["results"]
        (brush,) = prediction["result"]
        assert brush["type"] == "brushlabels" and brush["from_name"] == "mask"  # never the smart control
        assert brush["value"]["brushlabels"] == ["text"] and brush["value"]["rle"]
        assert (brush["original_width"], brush["original_height"]) == (160, 64)
    ids = [a.json()["results"][0]["result"][0]["id"] for a in answers]
    assert len(set(ids)) == 3  # each answer's regions are new ones on the page
    assert segmenter.embedded - before == 1  # the image was encoded once for three prompts


def test_a_box_drawn_to_find_all_gives_every_instance_of_its_label(
    backend: tuple[str, HandedOver, CountingSam2], text_project: tuple[Project, list[dict[str, Any]]]
) -> None:
    url, _, _ = backend
    project, tasks = text_project
    drawn = {
        "type": "rectanglelabels",
        "from_name": "find_all",
        "value": {"x": 60, "y": 5, "width": 30, "height": 30, "rectanglelabels": ["text"]},
    }
    answer = call(
        url,
        "/predict",
        {"tasks": tasks[:1], "project": f"{project.id}.1", "params": {"context": {"result": [drawn]}}},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][0]["result"]
    boxes = [r for r in result if r["type"] == "rectanglelabels"]
    assert [r["from_name"] for r in boxes] == ["label"] * len(boxes)  # the project's box control
    assert len(boxes) >= 2  # the drawn box and the text line the OCR model found
    assert boxes[0]["value"]["x"] == pytest.approx(60) and boxes[0]["value"]["width"] == pytest.approx(30)
    assert len([r for r in result if r["type"] == "brushlabels"]) == len(boxes)  # a mask for each


@pytest.fixture(scope="module")
def witness() -> Iterator[Witness]:
    served = Witness()
    try:
        yield served
    finally:
        served.close()


def hostile(project: int, witness: str, tasks: list[dict[str, Any]]) -> list[tuple[str, str, Any, int, str]]:
    """(name, path, body, status, what the detail says): each a request a backend must refuse."""
    task = tasks[0]
    deep = b'{"a":' * 5000 + b"{}" + b"}" * 5000

    def with_image(ref: str) -> dict[str, Any]:
        return {"tasks": [{"id": task["id"], "data": {"image": ref}}], "project": f"{project}.1"}

    def context(*results: Any, tasks_: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "tasks": tasks_ or [task],
            "project": f"{project}.1",
            "params": {"context": {"result": list(results)}},
        }

    click = {"type": "keypointlabels", "value": {"x": 10, "y": 10, "keypointlabels": ["text"]}}
    entities = '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
    bomb = f'<?xml version="1.0"?>{entities}<View><Image name="image" value="$image"/>&b;</View>'
    return [
        ("over the size limit", "/predict", {"tasks": [task], "pad": "x" * 70_000}, 413, "byte limit"),
        ("not JSON", "/predict", b"{tasks: [", 400, "not JSON"),
        ("nested past the parser", "/predict", deep, 400, "not JSON"),
        ("a list, not an object", "/predict", [task], 422, "PredictRequest"),
        ("no tasks", "/predict", {"tasks": [], "project": f"{project}.1"}, 422, "tasks"),
        ("a task id that is text", "/predict", {"tasks": [{"id": "x", "data": {}}]}, 422, "tasks.0.id"),
        ("no project", "/predict", {"tasks": [task]}, 422, "project"),
        (
            "a project Label Studio lacks",
            "/predict",
            {"tasks": [task], "project": "987654.1"},
            404,
            "no project",
        ),
        ("an image on another host", "/predict", with_image(f"{witness}/photo.png"), 422, "not a file of"),
        ("a local path", "/predict", with_image("/etc/passwd"), 422, "neither a Label Studio file"),
        (
            "a path out of the uploads",
            "/predict",
            with_image("/data/upload/../../api/projects/"),
            422,
            "not a file of",
        ),
        ("another scheme", "/predict", with_image("file:///etc/passwd"), 422, "neither"),
        ("a click for two tasks", "/predict", context(click, tasks_=tasks[:2]), 422, "one task"),
        ("a polygon as a prompt", "/predict", context({"type": "polygonlabels", "value": {}}), 422, "clicks"),
        (
            "a click at NaN",
            "/predict",
            context({"type": "keypointlabels", "value": {"x": "NaN", "y": 1, "keypointlabels": ["t"]}}),
            422,
            "finite",
        ),
        (
            "a label no control has",
            "/predict",
            context({"type": "keypointlabels", "value": {"x": 10, "y": 10, "keypointlabels": ["dog"]}}),
            422,
            "'dog' is in none",
        ),
        (
            "setup: an entity bomb",
            "/setup",
            {"project": f"{project}.1", "schema": bomb},
            422,
            "forbidden XML",
        ),
        ("setup: no project id", "/setup", {"project": "first", "schema": CONFIG}, 422, "project"),
        ("webhook: not JSON", "/webhook", b"\x00\x01", 400, "not JSON"),
        (
            "webhook: a project Label Studio lacks",
            "/webhook",
            {"action": "TASKS_CREATED", "project": {"id": 987654}, "tasks": [{"id": 1}]},
            404,
            "no project",
        ),
    ]


def test_malformed_and_hostile_requests_each_get_a_4xx_and_the_server_keeps_serving(
    backend: tuple[str, HandedOver, CountingSam2],
    text_project: tuple[Project, list[dict[str, Any]]],
    witness: Witness,
) -> None:
    url, handed, _ = backend
    project, tasks = text_project
    headers = {"Content-Type": "application/json", "X-Prelabel-Webhook-Secret": SECRET}
    answers = {}
    for name, path, body, status, says in hostile(project.id, witness.url, tasks):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = httpx.post(url + path, content=content, headers=headers, auth=AUTH, timeout=60)
        answers[name] = (answer.status_code, answer.text)
        assert answer.status_code == status, (name, answer.text)
        assert says in answer.json()["detail"], (name, answer.text)
        assert httpx.get(url + "/health", auth=AUTH, timeout=5).status_code == 200, name
    assert witness.hits == []  # the other host was never asked, with or without the key
    assert handed.runs == []


def test_credentials_and_limits_before_anything_is_read(
    backend: tuple[str, HandedOver, CountingSam2], text_project: tuple[Project, list[dict[str, Any]]]
) -> None:
    url, _, _ = backend
    project, tasks = text_project
    request = {"tasks": tasks, "project": f"{project.id}.1"}
    cases = [
        # (what, answer, status)
        ("no basic auth", httpx.post(url + "/predict", json=request, timeout=30), 401),
        (
            "wrong basic auth",
            httpx.post(url + "/predict", json=request, auth=("labelstudio", "x"), timeout=30),
            401,
        ),
        (
            "webhook without its secret",
            httpx.post(url + "/webhook", json={"action": "TASKS_CREATED"}, timeout=30),
            401,
        ),
        (
            "webhook with a wrong secret",
            httpx.post(
                url + "/webhook",
                json={"action": "TASKS_CREATED"},
                headers={"X-Prelabel-Webhook-Secret": "guess"},
                timeout=30,
            ),
            401,
        ),
        (
            "a declared body over the limit",
            httpx.post(url + "/predict", content=b"x" * 100_000, auth=AUTH, timeout=30),
            413,
        ),
        (
            "a chunked body over the limit",
            httpx.post(url + "/predict", content=iter([b"x" * 40_000] * 3), auth=AUTH, timeout=30),
            413,
        ),
        ("GET /predict", httpx.get(url + "/predict", auth=AUTH, timeout=30), 405),
        ("a route that is not there", httpx.get(url + "/admin", auth=AUTH, timeout=30), 404),
    ]
    for what, answer, status in cases:
        assert answer.status_code == status, (what, answer.text)
        assert answer.headers["content-type"].startswith("application/json"), what
    probe = httpx.get(url + "/health", timeout=5)  # open to probes, and says nothing but that it is up
    assert probe.json() == {"status": "UP", "model_class": "prelabel"}
    assert (
        httpx.post(url + "/setup", json={"project": "1.1", "schema": CONFIG}, timeout=30).status_code == 401
    )


def test_imported_tasks_are_handed_over_in_one_run_and_changed_annotations_are_ignored_without_a_pull(
    backend: tuple[str, HandedOver, CountingSam2], ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    url, handed, _ = backend
    project = ls_client.create_project("serve webhook", CONFIG)
    ids = ls_client.upload_files(project.id, text_images(tmp_path / "images", 4))
    headers = {"X-Prelabel-Webhook-Secret": SECRET}
    before = len(handed.runs)
    for task_id in ids:  # one event per task, as a slow import sends them
        event = {"action": "TASKS_CREATED", "project": {"id": project.id}, "tasks": [{"id": task_id}]}
        answer = httpx.post(url + "/webhook", json=event, headers=headers, timeout=30)
        assert answer.json() == {"status": "queued", "action": "TASKS_CREATED", "tasks": 1}
    annotation = {"action": "ANNOTATION_CREATED", "project": {"id": project.id}, "annotation": {"id": 1}}
    assert (
        httpx.post(url + "/webhook", json=annotation, headers=headers, timeout=30).json()["status"]
        == "ignored"
    )
    deadline = time.monotonic() + 20
    while len(handed.runs) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    (run,) = handed.runs[before:]
    assert run[0] == project.id and sorted(run[1]) == sorted(ids)
    again = {"action": "TASKS_CREATED", "project": {"id": project.id}, "tasks": [{"id": i} for i in ids]}
    httpx.post(url + "/webhook", json=again, headers=headers, timeout=30)
    time.sleep(2)
    assert len(handed.runs) == before + 1  # the same tasks again: a run has them already


def test_connecting_to_a_label_studio_that_refuses_local_addresses_is_one_line_naming_both_settings(
    backend: tuple[str, HandedOver, CountingSam2],
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    cli: CliRun,
) -> None:
    url, _, _ = backend
    project = ls_client.create_project("serve refused", CONFIG)
    key = label_studio.legacy_token.get_secret_value()
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": key,
        "PRELABEL_SERVE_WEBHOOK_SECRET": SECRET,
    }
    done = cli("project", "connect", str(project.id), "--url", url, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "ML_BLOCK_LOCAL_IP=false and SSRF_PROTECTION_ENABLED=false" in line and url in line
    assert SECRET not in done.stdout + done.stderr
    assert ls_client.request("GET", "/api/ml", params={"project": project.id}).json() == []


def test_changed_annotations_start_one_incremental_pull_when_one_is_configured(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    project = ls_client.create_project("serve pull", CONFIG)
    handed = HandedOver()
    settings = serve_settings(
        tmp_path / "state", model="ocr", webhook_secret=SECRET, pull_out=str(tmp_path / "pull")
    )
    with ml_backend(settings, ls_settings(label_studio, tmp_path / "cache"), handed) as url:
        for number in range(3):  # an annotator at work: three events, one pull
            event = {
                "action": "ANNOTATION_UPDATED",
                "project": {"id": project.id},
                "annotation": {"id": number},
            }
            answer = httpx.post(url + "/webhook", json=event, headers={"X-Prelabel-Webhook-Secret": SECRET})
            assert answer.json() == {"status": "queued", "action": "ANNOTATION_UPDATED"}
        deadline = time.monotonic() + 20
        while not handed.pulls and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
    assert handed.pulls == [project.id] and handed.runs == []


def test_an_upload_read_before_is_answered_from_the_cache_without_reading_it_again(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    from prelabel.ingest.fetch import Fetcher
    from prelabel.serve.predictor import Models, Predictor
    from prelabel.serve.protocol import TaskIn
    from prelabel.store.cache import open_cache

    read: list[str] = []

    class CountingFetcher(Fetcher):
        def fetch_all(self, uris: Any) -> Any:
            read.extend(uris)
            return super().fetch_all(uris)

    project = ls_client.create_project("serve uploads", CONFIG)
    ls_client.upload_files(project.id, text_images(tmp_path / "images", 2))
    tasks = [TaskIn(id=t.id, data=dict(t.data)) for t in ls_client.iter_tasks(project.id)]
    ls = ls_settings(label_studio, tmp_path / "cache")
    models = Models(serve_settings(tmp_path / "state", model="ocr"), 4)
    predictor = Predictor(models, open_cache(tmp_path / "cache"), ls, ls_client)
    predictor.fetcher = CountingFetcher(ls, label_studio=ls_client)
    first = predictor.answer(ls_client.get_project(project.id), tasks, 60)
    again = predictor.answer(ls_client.get_project(project.id), tasks, 60)
    assert (first.inferred, again.cached, again.inferred) == (2, 2, 0)
    assert again.predictions == first.predictions
    assert len(read) == 2  # each upload read once


def test_find_all_with_sam3_served_is_answered_by_the_served_model_without_a_segmenter(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    tiny_sam3: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    project = ls_client.create_project(f"sam3 find-all {tmp_path.name[-20:]}", CONFIG)
    ls_client.upload_files(project.id, text_images(tmp_path / "images", 1))
    task = next(ls_client.iter_tasks(project.id))
    options = {"checkpoint": str(tiny_sam3), "threshold": 0.0, "device": "cpu"}
    settings = serve_settings(tmp_path / "state", model="sam3", model_options=options, budget=20)
    drawn = {
        "type": "rectanglelabels",
        "from_name": "find_all",
        "value": {"x": 10, "y": 10, "width": 40, "height": 60, "rectanglelabels": ["text"]},
    }
    click = {"type": "keypointlabels", "value": {"x": 10, "y": 10, "keypointlabels": ["text"]}}
    with ml_backend(settings, ls_settings(label_studio, tmp_path / "cache")) as url:

        def prompted(*results: Any) -> httpx.Response:
            body = {"tasks": [{"id": task.id, "data": dict(task.data)}], "project": f"{project.id}.1"}
            context = {"context": {"result": list(results)}}
            return call(url, "/predict", {**body, "params": context}, auth=None)

        found = prompted(drawn)
        assert found.status_code == 200, found.text
        result = found.json()["results"][0]["result"]
        boxes = [r for r in result if r["type"] == "rectanglelabels"]
        assert boxes and {r["from_name"] for r in boxes} == {"label"}  # threshold 0: random weights find some
        assert {r["value"]["rectanglelabels"][0] for r in boxes} == {"text"}
        assert len([r for r in result if r["type"] == "brushlabels"]) == len(boxes)  # SAM 3's own masks
        assert found.json()["results"][0]["model_version"].startswith("sam3")
        refused = prompted(click)  # a click needs a segmenter, which this backend has not
        assert refused.status_code == 400 and "no segmenter" in refused.json()["detail"]
        # the served model still answers a task as it opens
        plain = call(
            url,
            "/predict",
            {"tasks": [{"id": task.id, "data": dict(task.data)}], "project": f"{project.id}.1"},
            auth=None,
        )
        assert plain.status_code == 200, plain.text
