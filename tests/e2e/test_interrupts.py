"""An interrupted run leaves nothing behind: Ctrl-C, SIGTERM and SIGKILL of real `prelabel run`
processes while they fetch, infer and post, on the real Label Studio and the session's Prefect
server; each rerun finishes within the project lease plus a minute, and every task ends with
exactly one prediction of the version (none twice, none missing).

Each point has servers of its own that hold the run there: a site that answers images slowly
(fetching), the DINO-X protocol server keeping its tasks running (inferring), and a proxy in
front of Label Studio that holds the first bulk prediction import (posting), then forwards it,
so that Label Studio stores what a killed client never heard back about.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.lock import LEASE_SECONDS
from prelabel.ingest.samples import LABEL_CONFIG
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.server import LocalLabelStudio
from tests.conftest import encode_image, quick_client
from tests.support import REPO
from tests.support.dinox_server import TOKEN, dinox_server
from tests.support.fault_proxy import Rule, fault_proxy
from tests.support.http_faults import Site, serve

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

IMAGES = 6
VERSION = "dinox-interrupted"
POINTS = ("fetching", "inferring", "posting")
EXPECTED_CODE = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}


@dataclass
class Point:
    """One run held at one point: its command line, environment, and how to see it got there."""

    name: str
    project_id: int
    args: list[str]
    env: dict[str, str]
    reached: Callable[[], bool]
    release: Callable[[], None]  # stop holding later requests (the rerun goes at full speed)
    folder: Path
    process: subprocess.Popen[str] | None = field(default=None, repr=False)


def _images(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    images = {}
    for number in range(IMAGES):
        data = encode_image(Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)))
        images[f"frame_{number}.jpg"] = data
        (folder / f"frame_{number}.jpg").write_bytes(data)
    return images


@contextmanager
def _point(
    name: str, root: Path, label_studio: LocalLabelStudio, client: LabelStudioClient
) -> Iterator[Point]:
    """Servers that hold a run at ``name``, and the run's command line."""
    folder = root / name
    images = _images(folder / "images")
    project = client.create_project(f"interrupted while {name} {root.name}"[:50], LABEL_CONFIG)
    with ExitStack() as stack:
        dinox, state = stack.enter_context(dinox_server())
        source = ["--input-dir", "images"]
        ls_url = label_studio.url
        reached: Callable[[], bool]
        release: Callable[[], None]
        if name == "fetching":
            site = stack.enter_context(serve(Site(images=images, slow=8.0)))
            (folder / "images.csv").write_text("uri\n" + "".join(f"{site.url}/slow/{n}\n" for n in images))
            source = ["--manifest", "images.csv"]
            reached = lambda: sum(site.hits.values()) > 0  # noqa: E731

            def release() -> None:
                site.slow = 0.0
        elif name == "inferring":
            state.faults.extend(["slow"] * 1000)  # every task keeps running for a few polls
            reached = lambda: state.requests > 0  # noqa: E731
            release = state.faults.clear
        else:
            proxy = stack.enter_context(fault_proxy(label_studio.url))
            proxy.add(Rule("slow", "POST", "/import/predictions", seconds=15.0))
            ls_url = proxy.url
            reached = lambda: any("/import/predictions" in path for _, path, _ in proxy.events)  # noqa: E731

            def release() -> None:
                proxy.rules.clear()

        args = [
            "run",
            *source,
            "--project-id",
            str(project.id),
            "--model",
            "dinox",
            "--import-new",
            "--model-option",
            "classes=car.person",
            "--model-option",
            "poll_interval=1",
            "--model-version",
            VERSION,
            "--batch-size",
            "2",
            "--cache-dir",
            "cache",
            "--ls-url",
            ls_url,
            "--api-key",
            label_studio.legacy_token.get_secret_value(),
        ]
        env = {"PRELABEL_DINOX_TOKEN": TOKEN, "PRELABEL_DINOX_BASE_URL": dinox}
        yield Point(name, project.id, args, env, reached, release, folder)


def _start(point: Point) -> subprocess.Popen[str]:
    import os

    env = {**os.environ, **point.env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", "from prelabel_cli.main import main; main()", *point.args],
        cwd=point.folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {seconds:.0f} s")
        time.sleep(0.2)


def _predictions_per_task(client: LabelStudioClient, project_id: int) -> list[int]:
    tasks = client.iter_tasks(project_id, full=True)
    return [sum(p.get("model_version") == VERSION for p in task.predictions) for task in tasks]


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["int", "term", "kill"])
def test_an_interrupted_run_frees_its_project_and_a_rerun_completes_it(
    sent: signal.Signals, label_studio: LocalLabelStudio, prefect_server: str, tmp_path: Path
) -> None:
    with quick_client(label_studio) as client, ExitStack() as stack:
        points = [stack.enter_context(_point(name, tmp_path, label_studio, client)) for name in POINTS]
        for point in points:
            point.process = _start(point)
        for point in points:
            process = point.process
            assert process is not None
            _wait_until(lambda: point.reached() or process.poll() is not None, 180, point.name)  # noqa: B023
            assert process.poll() is None, (
                f"{point.name}: the run ended early\n{process.communicate()[1][-2000:]}"
            )
            process.send_signal(sent)
        for point in points:
            assert point.process is not None
            _, stderr = point.process.communicate(timeout=120)
            assert point.process.returncode == EXPECTED_CODE[sent], f"{point.name}: {stderr[-2000:]}"
            if sent != signal.SIGKILL:  # one line says what was done and that a rerun continues
                said = [line for line in stderr.splitlines() if line.startswith("prelabel: ")]
                assert len(said) == 1 and "run the same command again to continue" in said[0], stderr[-2000:]
                assert "Traceback" not in stderr, f"{point.name}: {stderr[-3000:]}"
            point.release()

        started = time.monotonic()
        for point in points:
            point.process = _start(point)
        for point in points:
            assert point.process is not None
            _, stderr = point.process.communicate(timeout=LEASE_SECONDS + 15 + 60 + 60)
            assert point.process.returncode == 0, f"{point.name}: {stderr[-3000:]}"
        assert time.monotonic() - started < LEASE_SECONDS + 15 + 60  # within the lease plus a minute

        for point in points:
            tasks = list(client.iter_tasks(point.project_id))
            assert len(tasks) == IMAGES, point.name  # no image imported twice, none missing
            assert _predictions_per_task(client, point.project_id) == [1] * IMAGES, point.name
