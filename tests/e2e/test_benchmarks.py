"""The benchmark scripts run (at toy sizes) so they cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

ROOT = REPO


def test_brush_benchmark_runs_and_checks_equality() -> None:
    script = str(ROOT / "benchmarks" / "brush_rle.py")
    done = subprocess.run(
        [sys.executable, script, "--height", "48", "--width", "64", "--repeat", "1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine:")
    assert [" ".join(line.split()[:2]) for line in lines[3:]] == [
        "one ellipse",
        "one blob",
        "hundreds of",
        "noisy edges",
    ]
    assert all(line.count("x") >= 2 for line in lines[3:])


def test_matching_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "matching.py"), "--n", "2000", "--fuzzy-left", "10"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "exact path:" in done.stdout and "10 stem/fuzzy matches" in done.stdout


def test_post_benchmark_runs_against_the_real_server(label_studio) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "post_bulk.py"),
            "--tasks",
            "20",
            "--ls-url",
            label_studio.url,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value()},
    )
    assert done.returncode == 0, done.stderr
    assert "ratio:" in done.stdout


def test_serve_benchmark_runs_against_the_real_server(label_studio) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.serve",
            "--tasks",
            "4",
            "--concurrency",
            "4",
            "--ls-url",
            label_studio.url,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value()},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in ("prelabel serve, uncached", "prelabel serve, cached", "examples' way (reload per request)"):
        assert line in done.stdout and "p95" in done.stdout.split(line)[1].splitlines()[0]
    assert "tasks/s" in done.stdout and "ratio" in done.stdout


def test_orchestration_benchmark_runs(label_studio) -> None:  # type: ignore[no-untyped-def]
    script = str(ROOT / "benchmarks" / "orchestration.py")
    done = subprocess.run(
        [sys.executable, script, "--images", "30", "--batch-size", "10", "--ls-url", label_studio.url],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value()},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ms/image" in done.stdout and "full rerun" in done.stdout


def test_grounded_sam2_benchmark_runs_tiny_on_cpu(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.grounded_sam2",
            "--tiny",
            "--images",
            "4",
            "--width",
            "96",
            "--height",
            "64",
            "--batch-sizes",
            "2",
            "--device",
            "cpu",
            "--no-fused-attention",
            "--channels-last",
            "--block-queries",
            "16",
            "--attn-implementation",
            "sdpa",
            "--json",
            str(figures),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine:") and lines[-1].startswith("ratio:")
    assert lines[1].endswith("deformable attention: PyTorch")
    rows = [line.split() for line in lines if line[:5].strip().isdigit()]
    # the given batch size and the adapter's default (8), each: images/s, memory n/a on the CPU,
    # 40 masks like the loop's (IoU >= 0.999), six stages and their sum
    assert [row[0] for row in rows] == ["2", "8"] and rows[1][-1] == "(default)"
    assert all(
        row[2] == "n/a" and row[3].endswith("/40") and float(row[4].strip("()")) >= 0.999 for row in rows
    )
    assert all(len(row) >= 13 for row in rows)
    assert any(line.startswith("loop ") for line in lines) and any("100k images" in line for line in lines)
    # the JSON holds every printed figure, and the settings the run was given
    report = json.loads(figures.read_text())
    assert report["settings"] | {"channels_last": True, "block_queries": 16} == report["settings"]
    assert [(b["batch"], round(b["images_per_s"], 2), b["peak_gib"]) for b in report["batches"]] == [
        (int(row[0]), float(row[1]), None) for row in rows
    ]
    stages = {"decode", "copies", "detector", "encoder", "decoder", "mask encode"}
    assert all(b["masks_compared"] == 40 and set(b["ms_per_image"]) == stages for b in report["batches"])
    assert (
        lines[-1] == f"ratio:   {report['best']['ratio_to_loop']:.1f}x" and report["loop"]["images_per_s"] > 0
    )
    assert set(report["hours_100k"]) == {"1", "8"}


def test_sam3_benchmark_runs_tiny_on_cpu_and_checks_the_loop() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.sam3_gpu",
            "--tiny",
            "--images",
            "3",
            "--width",
            "96",
            "--height",
            "64",
            "--prompts",
            "3",
            "--batch-sizes",
            "3",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine:") and "3 prompts, 10 regions each" in lines[1]
    # every batched mask was compared with the loop's before any ratio was printed
    assert any(line.split()[:1] == ["3"] and "30/30" in line for line in lines)
    assert any(line.startswith("grounded-sam2 (batch") for line in lines)
    assert lines[-1].startswith("ratio:") and lines[-1].endswith("x")


def test_gpu_variants_benchmark_runs_tiny_on_cpu(tmp_path: Path) -> None:
    figures = tmp_path / "variants.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_variants",
            "--tiny",
            "--images",
            "4",
            "--width",
            "96",
            "--height",
            "64",
            "--batch-sizes",
            "2",
            "--device",
            "cpu",
            "--json",
            str(figures),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = done.stdout.split("masks equal (worst IoU)\n")[1].splitlines()
    variants = json.loads(figures.read_text())["variants"]
    names = [
        "default",
        "float16",
        "no fused attention",
        "eager attention",
        "channels last",
        "block 16",
        "block 64",
    ]
    assert [v["variant"] for v in variants] == names and [line[:20].strip() for line in table[:7]] == names
    assert table[0].split()[1:4] == [
        f"{variants[0]['images_per_s']:.2f}",
        f"{variants[0]['spread']:.1%}",
        "1.00",
    ]
    for variant in variants:
        assert variant["masks_compared"] == 40
        if variant["variant"] == "eager attention":  # another model: transformers' eager BERT
            assert variant["max_score_difference"] > 1e-4
        else:  # on the CPU these change no computation (no autocast, no kernel), at most the
            # order of float sums (channels last picks another convolution on one thread)
            assert variant["max_score_difference"] < 1e-5 and variant["masks_equal"] == 40
    assert table[7].startswith("fastest: ")


def test_download_benchmark_runs() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.download",
            "--urls",
            "60",
            "--sequential",
            "10",
            "--latency",
            "0.01",
            "--concurrency",
            "8",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1].startswith("ratio:") and "peak RSS" in done.stdout


def test_active_learning_benchmark_runs() -> None:
    script = str(ROOT / "benchmarks" / "active_learning.py")
    args = ["--seeds", "1", "--pool", "300", "--test", "300", "--budget", "40", "--separation", "6"]
    done = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| 1:9") or line.startswith("| balanced")
    ]
    assert len(rows) == 2 and all("x** |" in row for row in rows)
    assert done.stdout.count("refit on") == 3


@pytest.mark.slow
def test_gpu_check_smoke_run_writes_its_eight_files(tmp_path: Path) -> None:
    """scripts/gpu-check's plumbing on the CPU: every step runs, the best batch size of the
    first benchmark feeds the next two, and $OUT holds at most 8 files (the device tool's limit)."""
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu-check"), "--smoke"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "OUT": str(out), "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "bench-fused.json",
        "bench-fused.log",
        "bench-plain.json",
        "bench-plain.log",
        "gpu-check.log",
        "pytest.log",
        "variants.json",
        "variants.log",
    ]
    best = json.loads((out / "bench-fused.json").read_text())["best"]["batch"]
    assert json.loads((out / "bench-plain.json").read_text())["settings"]["batch_sizes"] == str(best)
    assert json.loads((out / "variants.json").read_text())["batch"] == best
    log = (out / "gpu-check.log").read_text()
    assert "0 step(s) failed" in log and log.count(": ok in ") == 4


def test_video_benchmark_runs_tiny_on_cpu() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.video_gpu",
            "--tiny",
            "--width",
            "96",
            "--height",
            "64",
            "--fps",
            "12",
            "--objects",
            "2",
            "--seconds",
            "1.5",
            "3",  # 18 and 36 frames: both past the tiny model's memory window of 17
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine:") and "sam3-video 1.5 s (18 frames)" in lines[1]
    assert "sam3-video 3 s (36 frames)" in lines[2] and "held at most: 1 frames, 17 memories" in lines[2]
    assert lines[3].startswith("sam3 on every frame (36 frames)") and lines[-1].startswith("memory flat: yes")


def test_startup_benchmark_runs(label_studio) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "startup.py"),
            "--repeat",
            "1",
            "--ls-url",
            label_studio.url,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value()},
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "local     server: first task" in done.stdout and "temporary server: first task" in done.stdout
    assert "ratio (temporary / local, first task, medians):" in done.stdout


def test_export_costs_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.export_costs", "--n", "1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine:") and "1 1080p JPEGs per orientation" in lines[0]
    stages = ["read", "hash + header", "decode (EXIF applied)", "export (10 PNG masks, image, COCO)"]
    for orientation in (1, 6):  # upright, then sideways
        at = lines.index(f"orientation {orientation}:")
        rows = lines[at + 1 : at + 1 + len(stages)]
        assert [row[:42].strip() for row in rows] == stages, rows
        assert all(row.endswith("ms/image") for row in rows), rows


def test_review_page_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.review_page", "--items", "30", "--dims", "8", "--answers", "12"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("answer + next + progress, 30 items x 8 dims: median "), done.stdout
    assert " ms, worst " in done.stdout
