"""``prelabel serve``'s mistakes, caught before anything starts: one line, exit code 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import run_prelabel

ENV = {"PRELABEL_LS_URL": "http://127.0.0.1:9", "PRELABEL_LS_API_KEY": "k" * 40}


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
    ],
)
def test_a_mistake_is_one_line_before_anything_starts(
    args: list[str], env: dict[str, str], says: str, tmp_path: Path
) -> None:
    done = run_prelabel("serve", "--no-handoff", *args, cwd=tmp_path, env={**ENV, **env}, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 3 and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_prelabel(
            "serve", "--no-handoff", "--model", "ocr", "--port", str(port), cwd=tmp_path, env=ENV
        )
    assert done.returncode == 2, done.stderr
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr.strip().splitlines()[0]
