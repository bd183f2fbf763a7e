"""A local Prefect server that stays up between commands (``prelabel server start|stop|status``).

Without ``PREFECT_API_URL``, Prefect would start a temporary server inside every command
(7-10 s each) and take it down with the command. That server also lost what a run left
behind: the leases that hold a project for one run live in its memory, and the service that
expires them does not run in it, so a killed run locked its project for ever. Instead, a
flow command starts one background server once (``prefect server start`` in its own process
session, data in ``<state dir>/prefect``) and reuses it: later commands pay nothing, the
runs stay visible in its UI, and expired leases are freed by its services. Leases are kept
on disk (Prefect's file lease storage), so they expire even across a restart of the server.

Where ``PREFECT_API_URL`` is set (a profile or the environment), that server is used and
none is started. The server's URL and pid are kept in ``<state dir>/prefect-server.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from filelock import FileLock

from prelabel.core.atomic import atomic_write
from prelabel.core.errors import PrelabelError
from prelabel.labelstudio.server import free_port, port_is_free

__all__ = ["LocalPrefect", "ensure_server", "running_server", "start", "state_dir", "stop"]

DEFAULT_PORT = 4200
_STARTUP_TIMEOUT = 120.0
# Variables the server never needs: secrets stay out of its environment (and its logs).
_PRIVATE_PREFIXES = ("PRELABEL_", "LABEL_STUDIO_", "AWS_", "PREFECT_API_KEY")


@dataclass(frozen=True)
class LocalPrefect:
    """A running local Prefect server: its API URL, process and where it keeps its data."""

    api_url: str
    pid: int
    home: str
    log_file: str

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def state_dir() -> Path:
    """prelabel's state folder: $PRELABEL_STATE_DIR, else ~/.cache/prelabel."""
    return Path(os.environ.get("PRELABEL_STATE_DIR") or Path.home() / ".cache" / "prelabel")


def _state_file() -> Path:
    return state_dir() / "prefect-server.json"


def _healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def running_server() -> LocalPrefect | None:
    """The local server started earlier, if it still answers."""
    try:
        server = LocalPrefect(**json.loads(_state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return server if _healthy(server.api_url) else None


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    """One start at a time: two commands started together share one server."""
    path = state_dir() / "prefect-server.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start(port: int = DEFAULT_PORT) -> LocalPrefect:
    """Start the local server in the background (or find it running) and wait until it answers.

    The first start creates its database (10-20 s); later commands find it running.
    """
    with _start_lock():
        server = running_server()
        if server is not None:
            return server
        # Another state folder's server (a parallel test session, a second setup) may be choosing
        # the same port right now: the choice and the bind are one step for this user's starts
        # (a lock file per user: another user's would not open in a sticky /tmp).
        with FileLock(Path(tempfile.gettempdir()) / f"prelabel-prefect-port-{os.getuid()}.lock"):
            return _spawn(port if port_is_free(port) else free_port())


def _spawn(port: int) -> LocalPrefect:
    home = state_dir() / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    log_file = home / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", *_PRIVATE_PREFIXES))}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Leases on disk: a run killed while it held a project is freed after a restart too.
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect.server.concurrency.lease_storage.filesystem",
            "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        }
    )
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with log_file.open("ab") as sink:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = LocalPrefect(f"http://127.0.0.1:{port}/api", process.pid, str(home), str(log_file))
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while not _healthy(server.api_url):
        if process.poll() is not None or time.monotonic() > deadline:
            _kill(process.pid)
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-5:])
            raise PrelabelError(f"the local Prefect server did not start (log {log_file}):\n{tail}")
        time.sleep(0.5)
    atomic_write(_state_file(), json.dumps(asdict(server)))
    return server


def _kill(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM to the server's process group, SIGKILL after ``timeout`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.killpg(pid, 0)
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop() -> LocalPrefect | None:
    """Stop the server ``start`` left running; returns it, or None when none was running."""
    with _start_lock():
        try:
            server = LocalPrefect(**json.loads(_state_file().read_text()))
        except (OSError, ValueError, TypeError):
            return None
        _state_file().unlink(missing_ok=True)
        _kill(server.pid)
        return server


def ensure_server() -> str:
    """The API URL flows use: ``PREFECT_API_URL`` when configured, else the local server's,
    started once and put into this process's environment and Prefect's settings."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    if configured:
        return str(configured)
    url = start().api_url
    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()  # Prefect read the environment when it was imported
    return url
