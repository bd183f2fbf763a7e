"""Deployments end to end: a real Prefect server, pools and deployments from deployments/,
two process workers on the GPU pool and one on the CPU pool, runs started from the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio, free_port
from tests.support import REPO
from tests.support.http_faults import Site, serve
from tests.support.known_edits import known_edits_project
from tests.support.postgres import postgres_url
from tests.support.prefect_database import seed_prefect_database

ROOT = REPO
PREFECT = str(Path(sys.executable).parent / "prefect")
# The zombie automation's window in these tests, the default's: heartbeats come every 30 s
# (Prefect's floor), so a killed run is marked Crashed 60-95 s after the kill (the window, less
# the time since its last heartbeat, plus the 5 s proactive evaluation). A shorter one (60 s) let
# a single lost heartbeat crash a live parent run: a starved SQLite server drops events.
CRASH_AFTER = 90
pytestmark = pytest.mark.slow


class Stack:
    """The server's API URL, the environment every command gets, and the processes to stop."""

    def __init__(self, api: str, env: dict[str, str], logs: Path) -> None:
        self.api, self.env, self.logs = api, env, logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], **extra_env: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=ROOT, env=self.env, capture_output=True, text=True, check=False, timeout=300
        )

    def deploy(self, *setup_args: str) -> None:
        """Pools, limits and the automation set up, every deployment deployed."""
        setup = self.run(sys.executable, "deployments/setup.py", *setup_args)
        assert setup.returncode == 0, setup.stderr[-2000:]
        deploy = self.run(
            PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"
        )
        assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]

    def start_cpu_worker(self) -> None:
        self.start(
            "cpu",
            [PREFECT, "worker", "start", "--pool", "prelabel-cpu", "--type", "process", "--name", "cpu"],
        )

    def deploy_with_workers(self, *setup_args: str) -> None:
        """Everything deployed (``deploy``), two GPU-pool workers (gpu-a, gpu-b, one flow run at a
        time each) and one CPU-pool worker started."""
        self.deploy(*setup_args)
        for name in ("gpu-a", "gpu-b"):
            worker = [
                PREFECT,
                "worker",
                "start",
                "--pool",
                "prelabel-gpu",
                "--type",
                "process",
                "--name",
                name,
            ]
            self.start(name, [*worker, "--limit", "1"], PRELABEL_WORKER_NAME=name)
        self.start_cpu_worker()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; a busy SQLite server (workers polling, flows writing) may stall or answer
        503: retried, so a call that changes something must be idempotent (see ``start_run``)."""
        for attempt in range(5):
            try:
                answer = httpx.request(method, f"{self.api}{path}", json=body, timeout=60)
                if answer.status_code in (502, 503) and attempt < 4:
                    time.sleep(2)
                    continue
                answer.raise_for_status()
                return answer.json()
            except (httpx.TimeoutException, httpx.TransportError):
                if attempt == 4:
                    raise
                time.sleep(2)

    def start_run(self, deployment: str, params: dict[str, Any]) -> str:
        """Start a run of ``deployment`` (``flow/deployment``) through the API; its id. Under an
        idempotency key: a request retried after the server had carried it out (a starved SQLite
        server can take a minute to answer) would otherwise start the run twice."""
        found = self.call("GET", f"/deployments/name/{deployment}")
        body = {"parameters": {"params": params}, "idempotency_key": uuid.uuid4().hex}
        return str(self.call("POST", f"/deployments/{found['id']}/create_flow_run", body)["id"])

    def kill_worker_of(self, flow_run: dict[str, Any]) -> str:
        """SIGKILL the flow run's process group and that of the worker that started it (a lost
        machine); the worker's name."""
        pid = int(flow_run["infrastructure_pid"])
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        name = next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"PRELABEL_WORKER_NAME="))
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        return name

    def stop(self, patience: float = 10) -> None:
        """SIGTERM every process group, then SIGKILL what is left after ``patience`` seconds in all
        (workers wait out their graceful shutdown one after another: 20 s each was a minute)."""
        for process in reversed(self.processes.values()):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + patience
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):  # its leader gone, the group emptied
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path, label_studio: LocalLabelStudio) -> Iterator[Stack]:
    """The stack on SQLite, or on PostgreSQL where a test asks (``indirect`` parameter
    "postgresql"): production's database (docker/compose.yaml), started for the test."""
    ls = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    if getattr(request, "param", "sqlite") == "postgresql":
        with (
            postgres_url() as url,
            prefect_stack(tmp_path, {**ls, "PREFECT_API_DATABASE_CONNECTION_URL": url}) as on,
        ):
            yield on
        return
    with prefect_stack(tmp_path, ls) as running:
        yield running


@contextmanager
def prefect_stack(tmp_path: Path, extra_env: dict[str, str]) -> Iterator[Stack]:
    """``prefect server start`` in a temporary home; every process started is stopped after."""
    home, port = tmp_path / "prefect-home", free_port()
    if "PREFECT_API_DATABASE_CONNECTION_URL" in extra_env:
        home.mkdir()
    else:  # SQLite, from a copy migrated once: a new file costs the server 6 s more CPU
        seed_prefect_database(home / "prefect.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        # two cores shared by the server (SQLite), three workers and their flow runs: be patient
        "PREFECT_API_REQUEST_TIMEOUT": "120",
        "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
        "PRELABEL_ROOT": str(ROOT),
        "PYTHONPATH": str(ROOT),
        "PRELABEL_CACHE_DIR": str(tmp_path / "cache"),
        **extra_env,
    }
    running = Stack(f"http://127.0.0.1:{port}/api", env, tmp_path)
    running.start("server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)])
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{running.api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or running.processes["server"].poll() is not None:
                pytest.fail(
                    "the Prefect server did not start:\n" + (tmp_path / "server.log").read_text()[-3000:]
                )
            time.sleep(1)
        yield running
    finally:
        running.stop()


def _wait_final(stack: Stack, run_id: str, timeout: float = 420, poll: float = 2) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = stack.call("GET", f"/flow_runs/{run_id}")
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return dict(run)
        time.sleep(poll)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(stack.logs.glob("*.log")))
    pytest.fail(f"flow run {run_id} did not finish:\n{logs}")


def _found(fetch: Callable[[], list[Any]], timeout: float, poll: float) -> list[Any]:
    """What ``fetch`` returns once it returns something, or ``[]`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := fetch()) and time.monotonic() < deadline:
        time.sleep(poll)
    return found


def slow_images(count: int, folder: Path, site: Site) -> Path:
    """``count`` distinct small JPEGs on ``site``, each answered after ``site.slow`` seconds (a slow
    source keeps a shard in flight without slowing the code under test); their manifest."""
    for number in range(count):
        image = Image.new("RGB", (64, 48), (number * 37 % 256, number * 91 % 256, 128))
        ImageDraw.Draw(image).rectangle((8 + number % 20, 8, 40, 30), fill=(250, 250, 250))
        data = io.BytesIO()
        image.save(data, format="JPEG")
        site.images[f"img_{number:03d}.jpg"] = data.getvalue()
    manifest = folder / "slow.csv"
    manifest.write_text("uri\n" + "".join(f"{site.url}/slow/{name}\n" for name in site.images))
    return manifest


def kill_mid_shard(
    stack: Stack, flow: str, site: Site, cache: Path, ready: Callable[[list[str]], bool] | None = None
) -> tuple[dict[str, Any], str]:
    """Wait for a run of ``flow`` (a shard) that has asked for some of its images but not all, has
    no marker yet and is ``ready`` (given its image URIs; e.g. has written something), then kill it
    with its worker; the run as it was and the worker's name."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        body = {"flows": {"name": {"any_": [flow]}}, "flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}}
        for run in stack.call("POST", "/flow_runs/filter", body):
            shard = run["parameters"]["params"]["shard"]
            listed = json.loads((cache / "markers" / "lists" / f"{shard}.json").read_text())["images"]
            asked = sum(site.hits[httpx.URL(uri).path] > 0 for uri in listed)
            if (
                run["infrastructure_pid"]
                and 3 <= asked < len(listed) - 2
                and (ready is None or ready(listed))
            ):
                assert not (cache / "markers" / f"{shard}.json").exists()
                return run, stack.kill_worker_of(run)
        time.sleep(0.3)
    pytest.fail(f"no {flow} run was caught in flight")


def crashed_after_kill(stack: Stack, victim: dict[str, Any], killed: float) -> float:
    """Wait for the automation to mark the killed run Crashed; the seconds from the kill."""
    crashed = _wait_final(stack, victim["id"], timeout=240, poll=0.5)
    assert crashed["state"]["type"] == "CRASHED", json.dumps(crashed["state"])[:2000]
    assert "no heartbeat" in crashed["state"]["message"]
    return time.monotonic() - killed


def shard_runs(stack: Stack, flow: str, shard: str) -> list[str]:
    """The final states of ``shard``'s runs, oldest first."""
    runs = stack.call(
        "POST", "/flow_runs/filter", {"flows": {"name": {"any_": [flow]}}, "sort": "START_TIME_ASC"}
    )
    return [r["state"]["type"] for r in runs if r["parameters"]["params"]["shard"] == shard]


def run_with_a_shard_killed(
    stack: Stack,
    deployment: str,
    params: dict[str, Any],
    site: Site,
    cache: Path,
    ready: Callable[[list[str]], bool] | None = None,
) -> tuple[str, str]:
    """Run ``deployment``, SIGKILL the worker of one of its shards mid-flight, and check the shard
    ended Crashed, ran again on the other worker and the run completed; the shard and the lost worker."""
    shard_flow = "export-shard" if deployment.startswith("export/") else "infer-shard"
    run_id = stack.start_run(deployment, params)
    victim, lost = kill_mid_shard(stack, shard_flow, site, cache, ready)
    killed = time.monotonic()
    timings = {"crashed": crashed_after_kill(stack, victim, killed)}
    final = _wait_final(stack, run_id)
    timings["completed"] = time.monotonic() - killed
    print(f"worker {lost} killed; seconds from the kill: {timings}")
    assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]
    shard = victim["parameters"]["params"]["shard"]
    assert shard_runs(stack, shard_flow, shard) == ["CRASHED", "COMPLETED"]
    marker = json.loads((cache / "markers" / f"{shard}.json").read_text())
    assert marker["worker"] == ({"gpu-a", "gpu-b"} - {lost}).pop()
    return shard, lost


def test_a_worker_killed_mid_shard_the_shard_runs_again_and_every_task_has_one_prediction(
    stack: Stack, ls_client: LabelStudioClient, project: Project, tmp_path: Path, detr_says_dog: Path
) -> None:
    stack.deploy_with_workers("--crash-silent-after", str(CRASH_AFTER))
    with serve(Site({}, slow=2.0)) as site:
        manifest = slow_images(20, tmp_path, site)
        params = {
            "project_id": project.id,
            "manifest": str(manifest),
            "model": "detr",
            "import_new": True,
            "model_options": {"checkpoint": str(detr_says_dog), "threshold": 0.5, "device": "cpu"},
            "model_version": "survivor",
            "shard_size": 10,
            "max_parallel_shards": 2,
            "batch_size": 2,
            "label_map": {"car": "civilian vehicle"},
            "output_dir": str(tmp_path / "out"),
            "unmatched_csv": str(tmp_path / "out" / "unmatched_labels.csv"),
        }
        run_with_a_shard_killed(stack, "preannotate/preannotate", params, site, tmp_path / "cache")
    tasks = list(ls_client.iter_tasks(project.id, full=True))
    assert len(tasks) == 20
    assert [[p["model_version"] for p in t.predictions] for t in tasks] == [["survivor"]] * 20
    # "dog" is no label of the project: no region posted, each image's 12 counted once
    assert all(p["result"] == [] for t in tasks for p in t.predictions)
    rows = [
        line.split(",")[1:]
        for line in (tmp_path / "out" / "unmatched_labels.csv").read_text().splitlines()[1:]
    ]
    assert rows == [[str(project.id), "survivor", "dog", "240"]]


@pytest.mark.parametrize("stack", ["sqlite", "postgresql"], indirect=True)
def test_deploy_schedule_and_scale_out_over_two_gpu_workers(
    stack: Stack, ls_client: LabelStudioClient, project: Project, tmp_path: Path, detr_says_car: Path
) -> None:
    stack.deploy_with_workers()

    images = tmp_path / "images"
    images.mkdir()
    for sample in make_samples():
        (images / sample.name).write_bytes(sample.data)
    params = {
        "project_id": project.id,
        "input_dir": str(images),
        "model": "detr",
        "import_new": True,
        "model_options": {"checkpoint": str(detr_says_car), "threshold": 0.5, "device": "cpu"},
        "model_version": "deployed",
        # two shards of two images: one on each GPU worker (each flow run pays for its interpreter)
        "shard_size": 2,
        "max_parallel_shards": 2,
        "label_map": {"car": "civilian vehicle"},
        "output_dir": str(tmp_path / "out"),
        "unmatched_csv": str(tmp_path / "out" / "unmatched_labels.csv"),
    }
    final = _wait_final(stack, stack.start_run("preannotate/preannotate", params))
    assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]

    assert ls_client.model_versions(project.id) == {"deployed": 4}
    labels = [
        [r["value"]["rectanglelabels"][0] for p in t.predictions for r in p["result"]]
        for t in ls_client.iter_tasks(project.id, full=True)
    ]
    assert labels == [["civilian vehicle"] * 12] * 4  # every query finds "car"; the label map renames it
    assert not (tmp_path / "out" / "unmatched_labels.csv").exists()
    markers = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "markers").glob("*.json")]
    assert len(markers) == 2 and {m["worker"] for m in markers} == {"gpu-a", "gpu-b"}
    # The shards' image lists travel by reference: no image path among the stored parameters.
    shards = stack.call("POST", "/flow_runs/filter", {"flows": {"name": {"any_": ["infer-shard"]}}})
    assert len(shards) >= 2
    assert all(r["parameters"]["params"]["images"] == [] for r in shards)
    assert all(str(images) not in json.dumps(r["parameters"]) for r in shards)

    pull = stack.call("GET", "/deployments/name/pull-annotations/pull-annotations")
    assert pull["schedules"] and pull["schedules"][0]["schedule"]["interval"] == 3600
    scheduled: list[Any] = []
    for _ in range(30):
        body = {
            "deployments": {"id": {"any_": [pull["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        }
        scheduled = stack.call("POST", "/flow_runs/filter", body)
        if scheduled:
            break
        time.sleep(1)
    assert scheduled and scheduled[0]["parameters"]["params"]["project_id"] == 1

    refused = stack.run(
        PREFECT,
        "deployment",
        "run",
        "preannotate/preannotate",
        "--params",
        json.dumps({"params": {**params, "project_id": 0}}),
    )
    assert refused.returncode != 0
    assert "project_id" in refused.stdout + refused.stderr


def test_quality_runs_after_each_pull_for_its_project(
    stack: Stack, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    stack.deploy()
    stack.start_cpu_worker()
    project = known_edits_project(ls_client)
    ls_client.show_predictions(project.id, "v1")  # the version annotators see: the one measured
    out = tmp_path / "pull"
    pulled = stack.start_run(
        "pull-annotations/pull-annotations", {"project_id": project.id, "output_dir": str(out)}
    )
    assert _wait_final(stack, pulled)["state"]["type"] == "COMPLETED"
    completed = {
        "event": {"name": ["prefect.flow-run.Completed"]},
        "resource": {"id": [f"prefect.flow-run.{pulled}"]},
    }
    # events are stored in batches, a second or so after they happen
    (event,) = _found(lambda: stack.call("POST", "/events/filter", {"filter": completed})["events"], 60, 1)
    # Prefect may deliver a run's Completed event twice (a state write retried under load):
    # the automation starts one quality run per pull run, not one per event.
    again = {
        **{k: v for k, v in event.items() if k != "received"},
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
    }
    httpx.post(f"{stack.api}/events", json=[again], timeout=60).raise_for_status()

    def quality_runs() -> list[Any]:
        return list(stack.call("POST", "/flow_runs/filter", {"flows": {"name": {"any_": ["quality"]}}}))

    assert _found(quality_runs, 180, 2), "the pull's completion started no quality run"
    time.sleep(5)  # time for the second event to start a second run, were it to
    quality = quality_runs()
    assert len(quality) == 1, [run["name"] for run in quality]
    final = _wait_final(stack, quality[0]["id"])
    assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]
    assert final["parameters"]["params"]["project_id"] == project.id  # a number, from the pull's run
    summary = json.loads((out / "quality" / "summary.json").read_text())
    assert summary["model_version"] == "v1" and summary["tasks"] == 4
    assert summary["fates"] == {"kept": 6, "edited": 5, "deleted": 3, "added": 3}
