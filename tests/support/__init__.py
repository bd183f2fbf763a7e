"""What tests and benchmarks share: tiny random models, fault-injecting HTTP servers, chromium,
screenshot checks."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The repository's root, wherever a test module sits in the tiers."""


def python_prints(code: str, env: dict[str, str] | None = None) -> str:
    """What ``python -c code`` prints, run in a fresh interpreter from the repository's root (the
    imports it makes are its own); its error output is the failure's message."""
    full = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=full, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
