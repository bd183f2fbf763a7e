"""A local Label Studio in its own virtual environment: for the demo, tests and newcomers.

Label Studio pulls Django and many pins, so it never shares prelabel's environment: it is
installed once into ``~/.cache/prelabel/label-studio-<version>`` (or ``venv_dir``) and
reused. ``start`` runs it headless on 127.0.0.1 with its data in ``data_dir``, a user, a
legacy token enabled for the organization, and a personal access token created through
the API, then waits for ``/health``. Label Studio gives a user one personal token and never
shows it again, so the token is kept in the data directory (``PERSONAL_TOKEN_FILE``, owner
only) and a later start of the same directory uses it again.

A new data directory would spend most of its first start migrating an empty database (30 s of
CPU; over a minute on a busy machine). The empty migrated database is made once per installed
version, beside its venv, by Label Studio's own start-up path, and a new data directory starts
from a copy of it: Label Studio then finds nothing to migrate.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock
from pydantic import SecretStr

from prelabel.core.atomic import atomic_write
from prelabel.core.errors import LabelStudioStartError

__all__ = [
    "LABEL_STUDIO_VERSION",
    "PERSONAL_TOKEN_FILE",
    "LocalLabelStudio",
    "default_venv_dir",
    "ensure_installed",
    "free_port",
    "personal_token",
    "port_is_free",
    "seed_database",
    "start_label_studio",
]

PERSONAL_TOKEN_FILE = ".prelabel-personal-token"  # noqa: S105  (a file name, not a secret)
DATABASE_FILE = "label_studio.sqlite3"  # Label Studio's SQLite database in its data directory
EMPTY_DATABASE = ".prelabel-empty-database"  # in the venv: the migrated empty database

log = logging.getLogger(__name__)

LABEL_STUDIO_VERSION = "1.23.2"


def default_venv_dir(version: str = LABEL_STUDIO_VERSION) -> Path:
    """Where the Label Studio environment lives: $PRELABEL_LS_VENV or the user cache."""
    configured = os.environ.get("PRELABEL_LS_VENV")
    return Path(configured) if configured else Path.home() / ".cache" / "prelabel" / f"label-studio-{version}"


def ensure_installed(venv_dir: Path | None = None, version: str = LABEL_STUDIO_VERSION) -> Path:
    """Install Label Studio into its own venv unless already there; return its executable."""
    venv = venv_dir or default_venv_dir(version)
    executable = venv / "bin" / "label-studio"
    stamp = venv / ".prelabel-installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Two starts at once (two commands, parallel tests) install once: the second waits, then finds it.
    with FileLock(venv.parent / f".{venv.name}.lock"):
        if executable.exists() and stamp.exists() and stamp.read_text().strip() == version:
            return executable
        log.info("installing label-studio==%s into %s (a few minutes, once)", version, venv)
        shutil.rmtree(venv / EMPTY_DATABASE, ignore_errors=True)  # another version's
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            subprocess.run([*pip, "--upgrade", "pip"], check=True)
            subprocess.run([*pip, f"label-studio=={version}"], check=True)
        except subprocess.CalledProcessError as exc:
            failed = f"installing label-studio=={version} into {venv} failed ({exc})"
            raise LabelStudioStartError(failed) from exc
        atomic_write(stamp, version)
    return executable


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_LOWEST_PORT = 20000  # below this, well-known services (databases, dev servers) are more likely


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for a server about to start on it.

    Taken below the kernel's ephemeral range where there is room: a port from ``bind(0)`` is
    released before the server binds it, and meanwhile the kernel may hand the same port to
    another process's ``bind(0)`` or outgoing connection (seen with parallel test sessions).
    """
    ephemeral = _ephemeral_low()
    if ephemeral - _LOWEST_PORT >= 1000:
        for _ in range(50):
            port = _LOWEST_PORT + secrets.randbelow(ephemeral - _LOWEST_PORT)
            if port_is_free(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass
class LocalLabelStudio:
    """A running local Label Studio and the credentials to use it."""

    url: str
    username: str
    password: SecretStr
    legacy_token: SecretStr
    personal_token: SecretStr
    data_dir: Path
    process: subprocess.Popen[bytes] | None
    log_file: Path

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (its whole process group) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            pass


def start_label_studio(
    data_dir: Path,
    *,
    port: int | None = None,
    username: str = "prelabel@localhost",
    # A server on 127.0.0.1 for demos and tests: fixed local credentials on purpose.
    password: str = "prelabel-local",  # noqa: S107
    legacy_token: str = "prelabel0local0legacy0token0000000000000",  # noqa: S107
    venv_dir: Path | None = None,
    startup_timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
) -> LocalLabelStudio:
    """Start Label Studio headless on 127.0.0.1 and wait until it answers.

    A new data directory starts from a copy of the migrated empty database (``seed_database``).
    Raises ``LabelStudioStartError`` with the end of the server log when it does not
    come up in ``startup_timeout`` seconds. ``env`` adds environment variables, e.g. a feature
    flag (``fflag_feat_utc_210_prediction_validation_15082025=true``: prediction validation).
    """
    executable = ensure_installed(venv_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**_server_env(data_dir), **(env or {})}
    seed_database(executable, data_dir, env)
    log_file = data_dir / "label-studio.log"
    command = [
        str(executable),
        "start",
        "--no-browser",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--username",
        username,
        "--password",
        password,
        "--user-token",
        legacy_token,
        "--enable-legacy-api-token",
        "--data-dir",
        str(data_dir),
    ]
    with log_file.open("ab") as sink:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = LocalLabelStudio(
        url=url,
        username=username,
        password=SecretStr(password),
        legacy_token=SecretStr(legacy_token),
        personal_token=SecretStr(""),
        data_dir=data_dir,
        process=process,
        log_file=log_file,
    )
    try:
        _wait_healthy(server, startup_timeout)
        server.personal_token = personal_token(url, legacy_token, data_dir / PERSONAL_TOKEN_FILE)
    except BaseException:
        server.stop()
        raise
    return server


def _server_env(data_dir: Path) -> dict[str, str]:
    """The environment Label Studio runs in: its data here, headless, no telemetry."""
    return {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(data_dir.parent),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    }


def seed_database(executable: Path, data_dir: Path, env: Mapping[str, str]) -> bool:
    """Copy the migrated empty database into ``data_dir`` unless it has a database or ``env``
    names another (``DATABASE_NAME``, or PostgreSQL through ``DJANGO_DB``); whether it copied.

    The empty database is made once per installation (under a lock: parallel starts make it
    once) by ``label-studio version`` on a scratch data directory: Label Studio's start-up
    migrates before it reads its command. Only the database file is kept: the scratch
    directory's secret key is not.
    """
    target = data_dir / DATABASE_FILE
    if target.exists() or env.get("DATABASE_NAME") or env.get("DJANGO_DB", "sqlite") != "sqlite":
        return False
    venv = executable.parent.parent
    empty = venv / EMPTY_DATABASE / DATABASE_FILE
    with FileLock(venv.parent / f".{venv.name}.database.lock"):
        if not empty.is_file():
            _make_empty_database(executable, empty)
    shutil.copyfile(empty, target)
    return True


def _make_empty_database(executable: Path, empty: Path) -> None:
    log.info("migrating an empty Label Studio database (once per installation)")
    scratch = empty.parent / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        done = subprocess.run(
            [str(executable), "version", "--data-dir", str(scratch)],
            env=_server_env(scratch),
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        made = scratch / DATABASE_FILE
        if done.returncode != 0 or not made.is_file():
            said = (done.stdout + done.stderr)[-3000:]
            raise LabelStudioStartError(f"migrating an empty Label Studio database failed:\n{said}")
        made.replace(empty)
    except subprocess.TimeoutExpired as exc:
        raise LabelStudioStartError("migrating an empty Label Studio database took over 15 min") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _wait_healthy(server: LocalLabelStudio, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise LabelStudioStartError(f"Label Studio exited during start-up:\n{_tail(server.log_file)}")
        try:
            if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise LabelStudioStartError(
        f"Label Studio did not answer within {timeout:.0f} s:\n{_tail(server.log_file)}"
    )


def personal_token(url: str, legacy_token: str, kept: Path) -> SecretStr:
    """The user's personal access token: created, or the one ``kept`` from an earlier start
    (Label Studio refuses a second one with 409 and shows a token only when creating it)."""
    headers = {"Authorization": f"Token {legacy_token}"}
    answer = httpx.post(f"{url}/api/token/", headers=headers, timeout=30)
    if answer.status_code == 409 and kept.is_file():
        token = kept.read_text().strip()
        check = httpx.post(f"{url}/api/token/refresh/", json={"refresh": token}, timeout=30)
        if check.status_code == 200:
            return SecretStr(token)
    if answer.status_code == 409:
        raise LabelStudioStartError(
            f"the Label Studio user of {kept.parent} already has a personal access token that "
            f"prelabel did not keep ({kept} is missing or no longer valid); revoke it in Label "
            "Studio's Account & Settings, or start with a new data directory"
        )
    if answer.status_code >= 400:
        raise LabelStudioStartError(
            f"creating a personal access token failed: {answer.status_code} {answer.text[:300]}"
        )
    token = str(answer.json()["token"])
    atomic_write(kept, token, mode=0o600)
    return SecretStr(token)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
