"""The benchmark scripts run (at toy sizes) so they cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_brush_benchmark_runs_and_checks_equality() -> None:
    script = str(ROOT / "benchmarks" / "brush_rle.py")
    done = subprocess.run(
        [sys.executable, script, "--height", "48", "--width", "64", "--repeat", "1"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine:")
    assert [line.split()[0] for line in lines[3:]] == ["one", "hundreds", "noisy"]
    assert all(line.count("x") >= 2 for line in lines[3:])
