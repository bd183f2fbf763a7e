"""A server that is not Label Studio is one line for every command that talks to Label Studio;
a transient answer (a 503, a port refused for a moment) is retried first, and the command goes on.

In process (``prelabel_cli.app.main``): the flows are replaced by a stand-in that records that
the command reached its work, so no Prefect server is started.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prelabel.core.errors import NotLabelStudioError
from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.review.sets import ReviewSet
from tests.support.cli import prelabel
from tests.support.standin import standin

KEY = "key-for-label-studio-only"

COMMANDS = {
    name: line.split()
    for name, line in {
        "run": "run --input-dir images --project-id 1 --model ocr",
        "post": "post --input-dir images --project-id 1",
        "pull": "pull --project-id 1 --output-dir pulled",
        "quality": "quality --project-id 1 --model-version v1",
        "project show": "project show 1",
        "project create": "project create --title made-here --labels car",
        "review create": "review create --project-id 1 --model-version v1 --set s.db",
        "review apply": "review apply --set from-project.db",
        "ingest": "ingest --source ls://1 --manifest m.csv",
        "review serve": "review serve --set from-project.db --port 0",
        "review features": "review features --set from-project.db",
    }.items()
}
# What each command prints once it has done its work against the stand-in.
WORK = {
    "project show": "project 1: stand-in",
    "project create": "7",
    "review create": "0 items in s.db: ",
    "review apply": "wrote v1-reviewed in project 1: 0 created",
}


class _StartedError(Exception):
    """A flow would have started here."""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working folder with an images folder and a review set made from project 1; flows
    replaced by ``_StartedError``; no Label Studio variable but the ones a test sets."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(make_samples()[0].data)  # past the empty-folder check
    meta = {"source": "project", "project_id": 1, "model_version": "v1", "per": "box"}
    with ReviewSet.create(tmp_path / "from-project.db", [], meta):
        pass
    monkeypatch.chdir(tmp_path)
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "PRELABEL_LS_URL", "PRELABEL_LS_API_KEY"):
        monkeypatch.setenv(name, "")  # restored (removed) after the test, whatever a command sets
        monkeypatch.delenv(name)

    def started(*args: Any, **kwargs: Any) -> None:
        raise _StartedError

    monkeypatch.setattr("uvicorn.Server.run", started)  # the review page would serve until stopped
    monkeypatch.setattr("prelabel.predict.models.hub.read_locally", lambda *args: None)  # no weights here
    for module in ("predict", "data", "quality", "review"):
        for runner in ("run_flow", "run_posting_flow"):
            if hasattr(importlib.import_module(f"prelabel_cli.{module}"), runner):
                monkeypatch.setattr(f"prelabel_cli.{module}.{runner}", started)
    yield tmp_path


def _at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("PRELABEL_LS_URL", url)
    monkeypatch.setenv("PRELABEL_LS_API_KEY", KEY)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_server_answering_html_is_one_line(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    with standin("html") as server:
        _at(monkeypatch, server.url)
        done = prelabel(capsys, monkeypatch, *COMMANDS[command])
    assert (done.code, done.out) == (2, "")
    assert done.err == f"prelabel: error: {server.url} answered an HTML page: not a Label Studio API\n"
    assert [(method, path) for method, path, _ in server.seen] == [("GET", "/api/version")]
    assert all(auth == "" for _, _, auth in server.seen)  # the key never went to it


@pytest.mark.parametrize("command", COMMANDS)
def test_one_503_is_retried_and_the_command_goes_on(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    with standin("busy-once") as server:
        _at(monkeypatch, server.url)
        try:
            done = prelabel(capsys, monkeypatch, *COMMANDS[command])
        except _StartedError:
            done = None
    assert server.seen[:2] == [("GET", "/api/version", ""), ("GET", "/api/version", "")]  # 503, then again
    assert ("GET", "/api/current-user/whoami", f"Token {KEY}") in server.seen
    if command in WORK:
        assert done is not None and done.code == 0 and "error" not in done.err, done
        assert WORK[command] in done.out
    else:
        assert done is None  # went on to its flow


def test_a_port_refused_for_a_moment_is_waited_for(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with standin("late", late=1.0) as server:
        _at(monkeypatch, server.url)
        done = prelabel(capsys, monkeypatch, "project", "show", "1")
    assert (done.code, done.err) == (0, "") and done.out.startswith("project 1: stand-in\n")


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("/api/projects/1/", "an HTML page"),  # a login page
        ("/api/version", "an HTML page"),
    ],
)
def test_the_client_names_what_answered_instead_of_json(path: str, found: str) -> None:
    with (
        standin("html") as server,
        LabelStudioClient(server.url, KEY, retries=0) as client,
        pytest.raises(NotLabelStudioError) as caught,
    ):
        client.request_json("GET", path)
    assert caught.value.found == found and caught.value.status == 200
    assert str(caught.value) == (
        f"Label Studio GET {server.url}{path} -> 200: answered an HTML page: not a Label Studio API"
    )


def test_every_client_call_turns_html_into_a_clear_error() -> None:
    """No call of the client lets a JSONDecodeError out (each parses through one helper)."""
    with standin("html") as server, LabelStudioClient(server.url, KEY, retries=0) as client:
        calls = [
            lambda: client.get_project(1),
            lambda: client.find_project("x"),
            lambda: client.create_project("abc", "<View/>"),
            lambda: client.update_project(1, {"a": 1}),
            lambda: list(client.iter_tasks(1)),
            lambda: client.import_tasks(1, [{"data": {}}]),
            lambda: client.file_upload_refs(1, [1]),
            lambda: client.import_predictions(1, [{"task": 1}]),
            lambda: client.create_prediction({"task": 1}),
            lambda: client.task_predictions(1),
            lambda: client.delete_model_version(1, "v"),
            lambda: client.delete_task_predictions(1, [1]),
            lambda: client.model_versions(1),
            lambda: client.create_annotation(1, []),
            client.check,
        ]
        for call in calls:
            with pytest.raises(NotLabelStudioError, match="answered an HTML page"):
                call()


def test_a_personal_token_is_not_exchanged_with_an_html_server() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"
    with (
        standin("html") as server,
        LabelStudioClient(server.url, jwt, retries=0) as client,
        pytest.raises(NotLabelStudioError, match=r"POST \S+/api/token/refresh/ -> 200: answered an HTML"),
    ):
        client.get_project(1)


@pytest.mark.parametrize(
    ("kind", "found"),
    [
        ("other-api", "JSON without a Label Studio release"),  # another JSON API
        ("not-found", "404 (not found) for /api/version"),  # no Label Studio paths there
    ],
)
def test_other_servers_are_named_too(
    folder: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kind: Any, found: str
) -> None:
    with standin(kind) as server:
        _at(monkeypatch, server.url)
        done = prelabel(capsys, monkeypatch, "project", "show", "1")
    assert (done.code, done.out) == (2, "")
    assert done.err == f"prelabel: error: {server.url} answered {found}: not a Label Studio API\n"
