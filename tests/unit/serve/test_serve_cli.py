"""``prelabel serve``'s mistakes, caught before anything starts: one line, exit code 2 (in process:
each case ends before the server would start)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import prelabel

ENV = {"PRELABEL_LS_URL": "http://127.0.0.1:9", "PRELABEL_LS_API_KEY": "k" * 40}


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port in use: a case whose check were skipped would stop there, never serve for ever."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--model", "nope"], {}, "unknown model 'nope'"),
        (["--model", "ocr", "--model-option", "api_token=x"], {}, "looks like a secret"),  # never a parameter
        (["--model", "ocr", "--model-option", "min_score=high"], {}, "must be a finite number"),
        (["--model", "ocr", "--basic-auth-user", "ls"], {}, "basic auth needs both"),
        (["--model", "ocr", "--budget", "500"], {}, "--budget"),  # past Label Studio's own timeout
        (["--model", "ocr", "--label-map", "missing.json"], {}, "missing.json"),
        # Label Studio is checked first (it waits for an answer: more than 3 s)
        pytest.param(["--model", "ocr", "--connect", "3"], {}, "did not answer", marks=pytest.mark.slow),
        (["--model", "ocr"], {"PRELABEL_LS_API_KEY": ""}, "API key"),
        # a setting the command line leaves at its default is the environment's
        (["--model", "ocr"], {"PRELABEL_SERVE_BUDGET": "500"}, "PRELABEL_SERVE_BUDGET"),
        (["--model", "ocr"], {"PRELABEL_SERVE_MODEL_OPTIONS": '{"api_key": "x"}'}, "looks like a secret"),
    ],
)
def test_a_mistake_is_one_line_before_anything_starts(
    args: list[str],
    env: dict[str, str],
    says: str,
    busy_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in {**ENV, **env}.items():
        monkeypatch.setenv(name, value)
    done = prelabel(capsys, monkeypatch, "serve", "--no-handoff", "--port", str(busy_port), *args)
    assert done.code == 2, done.out + done.err
    lines = done.err.strip().splitlines()
    assert len(lines) <= 3 and says in lines[0], done.err
    assert "Traceback" not in done.err


def test_a_port_in_use_is_one_line(
    busy_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    done = prelabel(capsys, monkeypatch, "serve", "--no-handoff", "--model", "ocr", "--port", str(busy_port))
    assert done.code == 2, done.err
    assert f"port {busy_port} on 127.0.0.1 is in use" in done.err.strip().splitlines()[0]
