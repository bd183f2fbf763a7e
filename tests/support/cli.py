"""The ``prelabel`` command in this process: its error boundary included, no subprocess to pay."""

from __future__ import annotations

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
    """Run ``prelabel ARGS`` through ``prelabel_cli.app.main`` (as the entry point does)."""
    from prelabel_cli.app import main

    capsys.readouterr()  # what earlier steps printed is theirs
    monkeypatch.setattr(sys, "argv", ["prelabel", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return Done(code, out, err)
