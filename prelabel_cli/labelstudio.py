"""``prelabel labelstudio start|stop``: a local Label Studio for the demo and for newcomers.

The server keeps running after ``start`` returns; its URL, pid and credentials are kept in
``~/.cache/prelabel/label-studio.json`` (readable by the user only) so ``stop`` and
``demo`` find it again.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from pydantic import SecretStr

from prelabel.core.atomic import atomic_write
from prelabel.labelstudio.server import LocalLabelStudio, start_label_studio

__all__ = ["LOCAL_BACKENDS", "running_server", "start", "state_file", "stop"]

# This Label Studio may call an ML backend on this machine (`prelabel serve --connect`): it refuses a
# backend (ML_BLOCK_LOCAL_IP) and its webhook (SSRF_PROTECTION_ENABLED) on a loopback or private
# address otherwise. The second also lets imported URLs and webhooks reach private addresses; this
# server listens on 127.0.0.1 only (docs/label-studio-backend.md: the trade-off).
LOCAL_BACKENDS = {"ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false"}


def state_file() -> Path:
    return (
        Path(os.environ.get("PRELABEL_STATE_DIR", Path.home() / ".cache" / "prelabel")) / "label-studio.json"
    )


def running_server() -> LocalLabelStudio | None:
    """The local server started earlier, if it still answers."""
    path = state_file()
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    try:
        healthy = httpx.get(f"{state['url']}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        return None
    return LocalLabelStudio(
        url=state["url"],
        username=state["username"],
        password=SecretStr(state["password"]),
        legacy_token=SecretStr(state["legacy_token"]),
        personal_token=SecretStr(state["personal_token"]),
        data_dir=Path(state["data_dir"]),
        process=None,
        log_file=Path(state["log_file"]),
    )


def start(data_dir: Path, port: int | None = None) -> LocalLabelStudio:
    """Start (or find running) the local Label Studio and remember it."""
    server = running_server()
    if server is not None:
        return server
    server = start_label_studio(data_dir, port=port or 8080, env=LOCAL_BACKENDS)
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "url": server.url,
        "pid": server.process.pid if server.process else None,
        "username": server.username,
        "password": server.password.get_secret_value(),
        "legacy_token": server.legacy_token.get_secret_value(),
        "personal_token": server.personal_token.get_secret_value(),
        "data_dir": str(server.data_dir),
        "log_file": str(server.log_file),
    }
    atomic_write(path, json.dumps(state), mode=0o600)
    return server


def stop() -> bool:
    """Stop the server ``start`` left running; False when there was none."""
    path = state_file()
    if not path.exists():
        return False
    pid = json.loads(path.read_text()).get("pid")
    path.unlink()
    if not pid:
        return False
    try:
        os.killpg(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
