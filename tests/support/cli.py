"""The ``prelabel`` command in this process: its error boundary included, no subprocess to pay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Done:
    """A command's exit code and what it printed."""

    code: int
    out: str
    err: str


def prelabel(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Done:
    """Run ``prelabel ARGS`` through ``prelabel_cli.app.main`` (as the entry point does). What a
    command changes in the process for its own life (environment variables such as serve's
    settings, signal handlers) is put back afterwards, so tests stay apart."""
    from prelabel_cli.app import main

    capsys.readouterr()  # what earlier steps printed is theirs
    monkeypatch.setattr(sys, "argv", ["prelabel", *args])
    environment = dict(os.environ)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(environment)
        for number, handler in handlers.items():
            signal.signal(number, handler)
    out, err = capsys.readouterr()
    return Done(code, out, err)


def in_process(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``run_prelabel``'s call and answer, in this process: ``env`` set and ``cwd`` entered for the
    command's life only. Flows run against the session's Prefect server (the ``prefect_server``
    fixture), so ``env`` must not name another one."""
    if env and "PREFECT_API_URL" in env:
        raise ValueError("another Prefect server needs a subprocess: use run_prelabel")
    with monkeypatch.context() as scoped:
        for name, value in (env or {}).items():
            scoped.setenv(name, value)
        if cwd is not None:
            scoped.chdir(cwd)
        done = prelabel(capsys, scoped, *args)
    return subprocess.CompletedProcess(["prelabel", *args], done.code, done.out, done.err)


CliRun = Callable[..., subprocess.CompletedProcess[str]]
"""The ``cli`` fixture's type: ``run_prelabel``'s signature, run in process."""
