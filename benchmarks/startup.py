"""Start-up: how soon does a command's first Prefect task run start?

Question: with the local Prefect server that flow commands start once and reuse, how long
from typing ``prelabel run --dry-run`` on a 4-image folder until its first task runs, against
the same flow on Prefect's temporary server (what every command paid before: a server
started inside the command and stopped with it)? Goal: <= 2 s with the server up.
Method: a project on a running Label Studio and 4 sample images; each side runs as a fresh
process, ``--repeat`` times (best and median kept), with a pause before each so that the
previous run's aftermath (the server recording it, a temporary server stopping) is not
measured: the command line (server already up), and ``python -c`` calling the ``preannotate``
flow with no ``PREFECT_API_URL`` (temporary server). "first task" is when the run's first task
started, as the Prefect server recorded it (the task run's start time), from the moment the
process was launched; "first line" when the first task-run line (Prefect prints one when a
task ends) reached the process's output; "end" when the process ended. Both dry runs must end
with the same counts (4 matched, 4 that would be posted).
Command: ``.venv/bin/python benchmarks/startup.py`` (starts a local Label Studio in a temp dir,
~1 min), or ``--ls-url URL --api-key KEY`` for a running one.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

from prelabel.ingest.samples import LABEL_CONFIG, make_samples
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.server import start_label_studio

ROOT = Path(__file__).resolve().parents[1]
PAUSE = 3.0  # seconds of quiet before each timed process
FLOW = """
import sys
from flows.params import PreannotateParams
from flows.preannotate import preannotate
runs = []
flow = preannotate.with_options(on_running=[lambda flow, run, state: runs.append(run.id)])
s = flow(PreannotateParams(project_id=int(sys.argv[1]), input_dir=sys.argv[2], model="ocr",
         dry_run=True, cache_dir=sys.argv[3], output_dir=sys.argv[4], model_version="startup"))
print(f"matched {s.matched} posted {s.posted}")
import time
asked = time.perf_counter()
from benchmarks.startup import first_task_start  # after the flow: not part of the start
print(f"first task started {first_task_start(runs[0]):.6f}")  # while the temporary server lives
print(f"lookup took {time.perf_counter() - asked:.6f}")  # left out of the end
"""


def first_task_start(flow_run_id: UUID | str, patience: float = 30.0) -> float:
    """When the flow run's first task started (Unix time), as the Prefect server of this
    process's settings recorded it; waits for the server to record the run's task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    only = FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(flow_run_id))]))
    deadline = time.monotonic() + patience
    with get_client(sync_client=True) as client:
        while True:
            started = [r.start_time for r in client.read_task_runs(flow_run_filter=only) if r.start_time]
            if started:
                return min(started).timestamp()
            if time.monotonic() > deadline:
                raise SystemExit(f"the server recorded no started task of flow run {flow_run_id}")
            time.sleep(0.2)


def _timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(seconds to the first task-run line, seconds to the end, output) of one process; the
    launch's Unix time is the output's first line."""
    time.sleep(PAUSE)
    launched = time.time()
    start = time.perf_counter()
    first = None
    lines = [f"launched {launched:.6f}\n"]
    with subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if first is None and "Task run '" in line:
                first = time.perf_counter() - start
        code = process.wait()
    total = time.perf_counter() - start
    output = "".join(lines)
    if code != 0 or first is None:
        raise SystemExit(f"{command[:4]} failed ({code}):\n{output[-3000:]}")
    return first, total, output


def _found(pattern: str, output: str) -> str:
    """The last match of ``pattern``'s group in a process's output; its end when there is none."""
    found = re.findall(pattern, output)
    if not found:
        raise SystemExit(f"no {pattern!r} in the output:\n{output[-2000:]}")
    return str(found[-1])


def _after_launch(output: str, started: float) -> float:
    """Seconds from the launch (the output's first line) to ``started``."""
    return started - float(output.split()[1])


def run(client: LabelStudioClient, key: str, repeat: int, work: Path) -> dict[str, list[float]]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    project = client.create_project("prelabel start-up benchmark", LABEL_CONFIG)
    images = work / "images"
    images.mkdir(exist_ok=True)
    for sample in make_samples():
        (images / sample.name).write_bytes(sample.data)
    client.upload_files(project.id, sorted(images.iterdir()))
    state = work / "state"
    base = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PRELABEL_LS_URL": client.url,
        "PRELABEL_LS_API_KEY": key,
        "PRELABEL_STATE_DIR": str(state),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    base.pop("PREFECT_API_URL", None)
    cli = [sys.executable, "-c", "from prelabel_cli.main import main; main()"]
    started = subprocess.run([*cli, "server", "start"], env=base, check=True, capture_output=True, text=True)
    api_url = re.findall(r"(http://127\.0\.0\.1:[0-9]+)", started.stdout)[0] + "/api"  # not timed
    figures: dict[str, list[float]] = {
        f"{side} {figure}": [] for side in ("local", "temporary") for figure in ("first", "line", "total")
    }
    try:
        for _ in range(repeat):
            command = [
                *cli,
                "run",
                "--input-dir",
                str(images),
                "--project-id",
                str(project.id),
                "--model",
                "ocr",
                "--dry-run",
                "--cache-dir",
                str(work / "cache"),
                "--output-dir",
                str(work / "out"),
            ]
            line, total, output = _timed(command, base)
            if "| matched to tasks | 4 |" not in output:
                raise SystemExit(f"the command line's dry run did not match 4 images:\n{output[-2000:]}")
            run_id = _found(r"/runs/flow-run/([0-9a-f-]{36})", output)
            with temporary_settings({PREFECT_API_URL: api_url}):  # the local server's record
                figures["local first"].append(_after_launch(output, first_task_start(run_id)))
            figures["local line"].append(line)
            figures["local total"].append(total)
            line, total, output = _timed(
                [
                    sys.executable,
                    "-c",
                    FLOW,
                    str(project.id),
                    str(images),
                    str(work / "cache"),
                    str(work / "out"),
                ],
                base,
            )
            if "matched 4 posted 4" not in output:  # a dry run counts what it would post
                raise SystemExit(f"the temporary server's dry run did not match 4 images:\n{output[-2000:]}")
            started = float(_found(r"first task started ([0-9.]+)", output))
            figures["temporary first"].append(_after_launch(output, started))
            figures["temporary line"].append(line)
            figures["temporary total"].append(total - float(_found(r"lookup took ([0-9.]+)", output)))
    finally:
        subprocess.run([*cli, "server", "stop"], env=base, check=False, capture_output=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ls-url")
    parser.add_argument("--api-key", default=os.environ.get("PRELABEL_LS_API_KEY"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = None
        if args.ls_url:
            url, key = args.ls_url, args.api_key
        else:
            server = start_label_studio(work / "label-studio")
            url, key = server.url, server.legacy_token.get_secret_value()
        try:
            with LabelStudioClient(url, key) as client:
                figures = run(client, key, args.repeat, work)
        finally:
            if server is not None:
                server.stop()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("seconds from the command to its first task's start, its first task line, its end (best / median):")
    for side in ("local", "temporary"):
        kinds = (("first", "first task"), ("line", "first line"), ("total", "end"))
        shown = ", ".join(
            f"{label} {min(got):.2f} / {statistics.median(got):.2f} s"
            for key, label in kinds
            for got in [figures[f"{side} {key}"]]
        )
        print(f"  {side:9} server: {shown}")
    ratio = statistics.median(figures["temporary first"]) / statistics.median(figures["local first"])
    print(f"ratio (temporary / local, first task, medians): {ratio:.1f}x")


if __name__ == "__main__":
    main()
