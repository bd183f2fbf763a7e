"""A throwaway PostgreSQL cluster for Prefect's server, from Debian's ``postgresql`` package.

Production runs Prefect's server on PostgreSQL (``docker/compose.yaml``); the deployment tests run
once on it too. The cluster is made in a fresh folder with ``initdb`` (trust authentication, on
127.0.0.1 only, a free port), started with ``pg_ctl``, and stopped and removed at the end. PostgreSQL
refuses to run as root, so as root it runs as ``nobody`` in a folder of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from prelabel.labelstudio.server import free_port

__all__ = ["postgres_url"]


def _binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (bash scripts/test does)")
    return found[-1].parent


def _run(command: list[str], as_nobody: bool) -> None:
    prefix = ["runuser", "-u", "nobody", "--"] if as_nobody else []
    done = subprocess.run([*prefix, *command], capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:2])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


@contextmanager
def postgres_url() -> Iterator[str]:
    """A running cluster's ``postgresql+asyncpg://`` URL for a database ``prefect``; removed after."""
    binaries, as_nobody = _binaries(), os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="prelabel-postgres-"))
    folder.chmod(0o755)
    if as_nobody:
        shutil.chown(folder, "nobody")
    data, port = folder / "data", free_port()
    try:
        _run(
            [str(binaries / "initdb"), "-D", str(data), "-U", "prefect", "--auth=trust", "-E", "UTF8"],
            as_nobody,
        )
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data)]
        _run([*pg_ctl, "-o", options, "-l", str(folder / "log"), "-w", "start"], as_nobody)
        try:
            _run(
                [str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "prefect", "prefect"],
                as_nobody,
            )
            yield f"postgresql+asyncpg://prefect@127.0.0.1:{port}/prefect"
        finally:
            _run([*pg_ctl, "-m", "fast", "-w", "stop"], as_nobody)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
