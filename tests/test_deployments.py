"""Deployments end to end: a real Prefect server, pools and deployments from deployments/,
two process workers on the GPU pool and one on the CPU pool, runs started from the CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio, free_port
from prelabel.samples import make_samples
from tests.support.known_edits import known_edits_project

ROOT = Path(__file__).parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
pytestmark = pytest.mark.slow


class Stack:
    """The server's API URL, the environment every command gets, and the processes to stop."""

    def __init__(self, api: str, env: dict[str, str], logs: Path) -> None:
        self.api, self.env, self.logs = api, env, logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str], **extra_env: str) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        self.processes.append(subprocess.Popen(args, cwd=ROOT, env={**self.env, **extra_env}, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=ROOT, env=self.env, capture_output=True, text=True, check=False, timeout=300
        )

    def deploy(self) -> None:
        """Pools and limits set up, every deployment deployed."""
        setup = self.run(sys.executable, "deployments/setup.py")
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

    def deploy_with_workers(self) -> None:
        """Every deployment deployed, two GPU-pool workers (gpu-a, gpu-b, one flow run at a time
        each) and one CPU-pool worker started."""
        self.deploy()
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
        """One API call; a busy SQLite server (workers polling, flows writing) may stall: retried."""
        for attempt in range(5):
            try:
                answer = httpx.request(method, f"{self.api}{path}", json=body, timeout=60)
                answer.raise_for_status()
                return answer.json()
            except (httpx.TimeoutException, httpx.TransportError):
                if attempt == 4:
                    raise
                time.sleep(2)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def stack(tmp_path: Path, label_studio: LocalLabelStudio) -> Iterator[Stack]:
    ls = {"PRELABEL_LS_URL": label_studio.url,
          "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value()}  # fmt: skip
    with prefect_stack(tmp_path, ls) as running:
        yield running


@contextmanager
def prefect_stack(tmp_path: Path, extra_env: dict[str, str]) -> Iterator[Stack]:
    """``prefect server start`` in a temporary home; every process started is stopped after."""
    home, port = tmp_path / "prefect-home", free_port()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        # two cores shared by the server (SQLite), three workers and their flow runs: be patient
        "PREFECT_API_REQUEST_TIMEOUT": "120", "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
        "PRELABEL_ROOT": str(ROOT), "PYTHONPATH": str(ROOT), "PRELABEL_CACHE_DIR": str(tmp_path / "cache"),
        **extra_env,
    }  # fmt: skip
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
            if time.monotonic() > deadline:
                pytest.fail(
                    "the Prefect server did not start:\n" + (tmp_path / "server.log").read_text()[-3000:]
                )
            time.sleep(1)
        yield running
    finally:
        running.stop()


def _started(done: subprocess.CompletedProcess[str]) -> str:
    """The flow run id ``prefect deployment run`` printed."""
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", done.stdout)
    assert run_id, done.stdout
    return run_id.group(1)


def _wait_final(stack: Stack, run_id: str, timeout: float = 420) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = stack.call("GET", f"/flow_runs/{run_id}")
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return dict(run)
        time.sleep(2)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(stack.logs.glob("*.log")))
    pytest.fail(f"flow run {run_id} did not finish:\n{logs}")


def test_deploy_schedule_and_scale_out_over_two_gpu_workers(
    stack: Stack, ls_client: LabelStudioClient, project: Project, tmp_path: Path, tiny_detr: Path
) -> None:
    stack.deploy_with_workers()

    images = tmp_path / "images"
    images.mkdir()
    for sample in make_samples():
        (images / sample.name).write_bytes(sample.data)
    params = {"project_id": project.id, "input_dir": str(images), "model": "detr", "import_new": True,
              "model_options": {"checkpoint": str(tiny_detr), "threshold": 0.0, "device": "cpu"},
              "model_version": "deployed", "shard_size": 1, "max_parallel_shards": 4,
              "label_map": {"car": "civilian vehicle"}, "output_dir": str(tmp_path / "out"),
              "unmatched_csv": str(tmp_path / "out" / "unmatched.csv")}  # fmt: skip
    started = _started(stack.run(PREFECT, "deployment", "run", "preannotate/preannotate", "--params",
                                 json.dumps({"params": params})))  # fmt: skip
    final = _wait_final(stack, started)
    assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]

    assert ls_client.model_versions(project.id) == {"deployed": 4}
    markers = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "markers").glob("*.json")]
    assert len(markers) == 4 and {m["worker"] for m in markers} == {"gpu-a", "gpu-b"}
    # The shards' image lists travel by reference: no image path among the stored parameters.
    shards = stack.call("POST", "/flow_runs/filter", {"flows": {"name": {"any_": ["infer-shard"]}}})
    assert len(shards) >= 4
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

    refused = stack.run(PREFECT, "deployment", "run", "preannotate/preannotate", "--params",
                        json.dumps({"params": {**params, "project_id": 0}}))  # fmt: skip
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
    params = {"params": {"project_id": project.id, "out": str(out)}}
    pulled = _started(stack.run(PREFECT, "deployment", "run", "pull-annotations/pull-annotations", "--params",
                                json.dumps(params)))  # fmt: skip
    assert _wait_final(stack, pulled)["state"]["type"] == "COMPLETED"

    quality: list[Any] = []
    deadline = time.monotonic() + 180
    while not quality and time.monotonic() < deadline:
        quality = stack.call("POST", "/flow_runs/filter", {"flows": {"name": {"any_": ["quality"]}}})
        time.sleep(2)
    assert len(quality) == 1, "the pull's completion started no quality run"
    final = _wait_final(stack, quality[0]["id"])
    assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]
    assert final["parameters"]["params"]["project_id"] == project.id  # a number, from the pull's run
    summary = json.loads((out / "quality" / "summary.json").read_text())
    assert summary["model_version"] == "v1" and summary["tasks"] == 4
    assert summary["fates"] == {"kept": 3, "edited": 2, "deleted": 1, "added": 1}
