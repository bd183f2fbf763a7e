"""The Label Studio check that runs while a command loads its flow: its answer, or its one-line
error, reaches the command; it never holds the command up."""

from __future__ import annotations

import threading

import pytest

from prelabel.core.errors import PrelabelError
from prelabel_cli.checks import check_project_meanwhile
from tests.support.standin import standin


def _at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PRELABEL_LS_URL", url)
    monkeypatch.setenv("PRELABEL_LS_API_KEY", "key")


def test_the_checks_error_is_raised_where_the_project_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    with standin("html") as server:
        _at(monkeypatch, server.url)
        with check_project_meanwhile(None, 1) as project:
            pass
        with pytest.raises(PrelabelError) as raised:
            project()
    assert str(raised.value) == f"{server.url} answered an HTML page: not a Label Studio API"
    assert [path for _, path, _ in server.seen] == ["/api/version"]


def test_the_block_runs_while_the_check_waits_and_gets_the_project_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with standin("late", late=1.0) as server:
        _at(monkeypatch, server.url)
        with check_project_meanwhile(None, 1) as project:
            (check,) = [t for t in threading.enumerate() if t.name == "prelabel-check"]
            assert check.is_alive() and check.daemon  # still waiting for the port; Ctrl-C would not wait
        assert project().id == 1
