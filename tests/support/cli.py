"""The ``prelabel`` command in this process: its error boundary included, no subprocess to pay."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

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
