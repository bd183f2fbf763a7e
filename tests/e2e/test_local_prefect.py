"""Local Prefect servers of two state folders started at the same moment (two setups of one user,
parallel test sessions): the port is chosen and bound one start at a time, so each folder gets a
server of its own, never the other's answering on a port both thought free."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from prelabel.labelstudio.server import free_port

START = (
    "import sys; from prelabel_cli import prefectserver; print(prefectserver.start(int(sys.argv[1])).api_url)"
)
STOP = "from prelabel_cli import prefectserver; prefectserver.stop()"


def test_two_state_folders_started_at_once_get_a_server_each(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    envs = [clean | {"PRELABEL_STATE_DIR": str(tmp_path / name)} for name in ("a", "b")]
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", START, str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env in envs
    ]
    try:
        answers = [start.communicate(timeout=180) for start in starts]
        assert [start.returncode for start in starts] == [0, 0], [err[-2000:] for _, err in answers]
        urls = [out.strip().splitlines()[-1] for out, _ in answers]
        assert len(set(urls)) == 2 and f"http://127.0.0.1:{port}/api" in urls, urls
        for name, url in zip(("a", "b"), urls, strict=True):
            settings = httpx.get(f"{url}/admin/settings", timeout=30).json()
            assert Path(settings["home"]) == tmp_path / name / "prefect"  # its own server, not the other's
    finally:
        for start in starts:
            if start.poll() is None:
                start.kill()
        for env in envs:
            subprocess.run([sys.executable, "-c", STOP], env=env, timeout=60, check=False)
