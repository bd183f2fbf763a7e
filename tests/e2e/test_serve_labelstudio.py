"""prelabel inside Label Studio, end to end: ``prelabel serve --connect`` (the real command) with a
real Label Studio calling it and a real Prefect server whose worker runs what the backend hands over.

Label Studio runs with ML_BLOCK_LOCAL_IP=false and SSRF_PROTECTION_ENABLED=false: it reaches the
backend on 127.0.0.1 (docs/label-studio-backend.md says why both, and what they relax). With
PRELABEL_SCREENSHOTS=<folder> the browser test saves the guide's screenshots there.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio, free_port
from tests.conftest import TINY_DETR_LABELS, quick_client, run_prelabel, serve_label_studio
from tests.e2e.test_deployments import Stack, _wait_final, prefect_stack
from tests.support import REPO

pytestmark = pytest.mark.slow

ROOT = REPO
LABELS = "".join(f'<Label value="{label}"/>' for label in TINY_DETR_LABELS.values())
CONFIG = f"""<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">{LABELS}</RectangleLabels>
  <BrushLabels name="mask" toName="image">{LABELS}</BrushLabels>
  <KeyPointLabels name="click" toName="image" smart="true">{LABELS}</KeyPointLabels>
</View>"""
TASKS = 500


@pytest.fixture(scope="module")
def ml_label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLabelStudio]:
    """A Label Studio that may call a backend on loopback (both settings: either alone is a 403)."""
    env = {"ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false"}
    yield from serve_label_studio(tmp_path_factory.mktemp("ml-label-studio") / "data", env)


@pytest.fixture(scope="module")
def client(ml_label_studio: LocalLabelStudio) -> Iterator[LabelStudioClient]:
    with quick_client(ml_label_studio) as opened:
        yield opened


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, ml_label_studio: LocalLabelStudio) -> Iterator[Stack]:
    """A Prefect server with prelabel's deployments and one CPU worker (preannotate's pool)."""
    ls = {
        "PRELABEL_LS_URL": ml_label_studio.url,
        "PRELABEL_LS_API_KEY": ml_label_studio.legacy_token.get_secret_value(),
    }
    with prefect_stack(tmp_path_factory.mktemp("prefect-stack"), ls) as running:
        running.deploy()
        running.start_cpu_worker()
        yield running


def images(count: int, folder: Path, offset: int = 0) -> list[Path]:
    """``count`` distinct small JPEGs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(offset, offset + count):
        image = Image.new("RGB", (64, 48), (number * 37 % 256, number * 91 % 256, 128))
        ImageDraw.Draw(image).rectangle((8 + number % 20, 8, 40, 30), fill=(250, 250, 250))
        data = io.BytesIO()
        image.save(data, format="JPEG")
        (folder / f"img_{number:04d}.jpg").write_bytes(data.getvalue())
        paths.append(folder / f"img_{number:04d}.jpg")
    return paths


class Backend:
    """``prelabel serve`` run as a user runs it, its output in a log; stopped with SIGTERM."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        code = "from prelabel_cli.main import main; main()"
        with log.open("wb") as sink:
            command = [sys.executable, "-c", code, "serve", *args]
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, line: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if line in self.text():
                return self.text()
            if self.process.poll() is not None:
                pytest.fail(f"prelabel serve exited ({self.process.returncode}):\n{self.text()[-3000:]}")
            time.sleep(0.5)
        pytest.fail(f"prelabel serve never said {line!r}:\n{self.text()[-3000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(30)


@pytest.fixture(scope="module")
def connected(
    client: LabelStudioClient, stack: Stack, tmp_path_factory: pytest.TempPathFactory, tiny_detr: Path
) -> Iterator[tuple[Project, Backend, str]]:
    """A project of 500 tasks and `prelabel serve --connect` on it (tiny DETR, a tiny SAM 2)."""
    from tests.support.random_models import save_sam2

    root = tmp_path_factory.mktemp("served")
    project = client.create_project("prelabel inside Label Studio", CONFIG)
    for start in range(0, TASKS, 100):
        client.upload_files(project.id, images(100, root / "images", start))
    port = free_port()
    env = {
        **stack.env,
        "PRELABEL_SERVE_STATE_DIR": str(root / "state"),
        "PRELABEL_SERVE_DEBOUNCE": "1",
        "PRELABEL_SERVE_RUN_OUTPUT": str(root / "runs"),
        "PRELABEL_INFER_BATCH_SIZE": "8",
    }
    args = [
        "--model",
        "detr",
        "--model-option",
        f"checkpoint={tiny_detr}",
        "--model-option",
        "threshold=0.0",
        "--model-option",
        "device=cpu",
        "--segmenter",
        str(save_sam2(root / "sam2")),
        "--device",
        "cpu",
        "--port",
        str(port),
        "--budget",
        "5",
        "--connect",
        str(project.id),
    ]
    backend = Backend(args, env, root / "serve.log")
    try:
        out = backend.wait_for(f"connected to project {project.id}")
        found = re.search(rf"connected to project {project.id}: .*model version (\S+)\)", out)
        assert found, out[-3000:]
        version = found.group(1)
        yield project, backend, version
    finally:
        assert backend.stop() in (0, 130, 143), backend.text()[-3000:]
    assert "Traceback" not in backend.text(), backend.text()[-3000:]


def test_serve_connect_is_called_back_by_label_studio(
    client: LabelStudioClient, connected: tuple[Project, Backend, str]
) -> None:
    project, backend, version = connected
    out = backend.text()
    assert f"setup, model version {version}" in out  # Label Studio itself called /setup (after /health)
    (ml,) = client.request("GET", "/api/ml", params={"project": project.id}).json()
    assert (ml["readable_state"], ml["title"], ml["model_version"], ml["is_interactive"]) == (
        "Connected",
        version,
        version,
        True,
    )
    hooks = client.request("GET", "/api/webhooks/", params={"project": project.id}).json()
    assert len(hooks) == 1 and hooks[0]["url"] == ml["url"] + "/webhook"
    assert set(hooks[0]["headers"]) == {"X-Prelabel-Webhook-Secret"}  # the secret: a header only
    assert hooks[0]["headers"]["X-Prelabel-Webhook-Secret"] not in out  # and never in the log
    assert client.get_project(project.id).model_version == version


def test_project_connect_and_project_show_name_the_running_backend(
    client: LabelStudioClient, connected: tuple[Project, Backend, str], stack: Stack
) -> None:
    project, _, version = connected
    (ml,) = client.request("GET", "/api/ml", params={"project": project.id}).json()
    other = client.create_project("connected by project connect", CONFIG)
    done = run_prelabel("project", "connect", str(other.id), "--url", ml["url"], env=stack.env)
    assert done.returncode == 0, done.stderr
    assert f"connected to project {other.id}: backend " in done.stdout
    assert f"at {ml['url']} (connected, model version {version})" in done.stdout
    shown = run_prelabel("project", "show", str(other.id), env=stack.env)
    assert shown.returncode == 0, shown.stderr
    (backend_line,) = [line for line in shown.stdout.splitlines() if ml["url"] in line]
    assert backend_line.endswith(f"{ml['url']} (connected), model version {version}"), shown.stdout
    unconnected = client.create_project("no backend", CONFIG)
    bare = run_prelabel("project", "show", str(unconnected.id), env=stack.env)
    assert "ML backends: none (prelabel project connect)" in bare.stdout


def test_opening_a_task_creates_its_prediction(
    client: LabelStudioClient, connected: tuple[Project, Backend, str]
) -> None:
    project, _, version = connected
    task = next(client.iter_tasks(project.id))
    opened = client.request("GET", f"/api/tasks/{task.id}").json()
    assert [p["model_version"] for p in opened["predictions"]] == [version]
    assert {r["type"] for r in opened["predictions"][0]["result"]} == {"rectanglelabels"}


def test_retrieve_predictions_on_500_tasks_answers_in_time_and_a_run_posts_the_rest_once(
    client: LabelStudioClient, connected: tuple[Project, Backend, str], stack: Stack
) -> None:
    project, backend, version = connected
    started = time.monotonic()
    action = {"id": "retrieve_tasks_predictions", "project": project.id}
    every = {"selectedItems": {"all": True, "excluded": []}}
    answer = client.request("POST", "/api/dm/actions", params=action, json=every, timeout=150)
    took = time.monotonic() - started
    assert answer.status_code == 200 and took < 100, took  # Label Studio's predict timeout
    backend.wait_for("handed to preannotate run")
    runs = stack.call("POST", "/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["prelabel-serve"]}}})
    assert len(runs) == 1
    # Part answered in the request, the rest handed to the run (counted from the run's own
    # parameters: on a busy machine the run may have posted its part before the request ends).
    handed = len(runs[0]["parameters"]["params"]["task_ids"])
    assert 1 < handed < TASKS - 1, handed
    final = _wait_final(stack, runs[0]["id"])
    assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]
    tasks = list(client.iter_tasks(project.id, full=True))
    assert len(tasks) == TASKS
    assert all([p["model_version"] for p in t.predictions] == [version] for t in tasks)  # once each
    print(f"retrieve on {TASKS} tasks: {took:.1f} s, {TASKS - handed} answered in the request")


def test_a_click_through_label_studio_returns_a_brush(
    client: LabelStudioClient, connected: tuple[Project, Backend, str]
) -> None:
    project, _, _ = connected
    (ml,) = client.request("GET", "/api/ml", params={"project": project.id}).json()
    task = next(client.iter_tasks(project.id))
    click = {
        "type": "keypointlabels",
        "from_name": "click",
        "to_name": "image",
        "is_positive": True,
        "original_width": 64,
        "original_height": 48,
        "value": {"x": 40, "y": 40, "width": 1, "keypointlabels": ["person"]},
    }
    context = {"result": [click]}
    answer = client.request(
        "POST", f"/api/ml/{ml['id']}/interactive-annotating", json={"task": task.id, "context": context}
    ).json()
    (brush,) = answer["data"]["result"]
    assert brush["type"] == "brushlabels" and brush["from_name"] == "mask"
    assert brush["value"]["brushlabels"] == ["person"] and brush["value"]["rle"]


def test_imported_tasks_fire_the_webhook_and_one_run_posts_their_predictions_once(
    client: LabelStudioClient, connected: tuple[Project, Backend, str], stack: Stack, tmp_path: Path
) -> None:
    project, backend, version = connected
    before = {
        r["id"]
        for r in stack.call(
            "POST", "/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["prelabel-serve"]}}}
        )
    }
    ids = client.upload_files(project.id, images(3, tmp_path, offset=9000))
    deadline = time.monotonic() + 120
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not runs:
        found = stack.call("POST", "/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["prelabel-serve"]}}})
        runs = [r for r in found if r["id"] not in before]
        time.sleep(1)
    assert len(runs) == 1, backend.text()[-3000:]
    assert sorted(runs[0]["parameters"]["params"]["task_ids"]) == sorted(ids)
    assert _wait_final(stack, runs[0]["id"])["state"]["type"] == "COMPLETED"
    for task_id in ids:
        assert [p["model_version"] for p in client.task_predictions(task_id)] == [version]
    assert "3 tasks were imported, handed to preannotate run" in backend.text()


def _screenshot(page: Any, name: str) -> None:
    """Save a screenshot for the guide when PRELABEL_SCREENSHOTS names a folder."""
    folder = os.environ.get("PRELABEL_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name))


def test_the_backend_and_its_predictions_as_label_studio_shows_them(
    ml_label_studio: LocalLabelStudio, client: LabelStudioClient, connected: tuple[Project, Backend, str]
) -> None:
    from tests.support.browser import chromium, chromium_path, log_in

    chromium_path()  # skip before any work when the browser is missing
    project, _, version = connected
    task = next(t for t in client.iter_tasks(project.id) if version in t.model_versions)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
        log_in(page, ml_label_studio)
        page.goto(f"{ml_label_studio.url}/projects/{project.id}/settings/ml")
        page.get_by_text(version).first.wait_for(timeout=30_000)  # the backend, named by its version
        page.get_by_text("Connected").first.wait_for(timeout=30_000)
        _screenshot(page, "serve-model-settings.png")
        page.goto(f"{ml_label_studio.url}/projects/{project.id}/data?task={task.id}")
        page.wait_for_function(
            "() => (window.Htx?.annotationStore?.selected?.regions?.length ?? 0) > 0", timeout=30_000
        )
        page.wait_for_timeout(1000)
        _screenshot(page, "serve-task-predictions.png")


def test_several_workers_each_load_their_own_model_and_stop_together(tmp_path: Path) -> None:
    """``--workers 2``: two processes, each with its model loaded once at its start (two "ready"
    lines), both answering on one port; SIGTERM stops them all, with no traceback."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PRELABEL_LS_URL": "http://127.0.0.1:9",  # never asked: no project is named
        "PRELABEL_LS_API_KEY": "k" * 40,
        "PRELABEL_SERVE_STATE_DIR": str(tmp_path / "state"),
    }
    args = ["--model", "ocr", "--workers", "2", "--port", str(port), "--no-handoff"]
    backend = Backend(args, env, tmp_path / "serve.log")
    try:
        backend.wait_for(f"prelabel ML backend: http://127.0.0.1:{port} (ocr, 2 workers", timeout=120)
        deadline = time.monotonic() + 180
        while backend.text().count("model ocr ready in") < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert backend.text().count("model ocr ready in") == 2, backend.text()[-3000:]
        for _ in range(8):
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).json()["status"] == "UP"
    finally:
        code = backend.stop()
    assert code in (0, 143), backend.text()[-3000:]
    assert "Traceback" not in backend.text(), backend.text()[-3000:]
