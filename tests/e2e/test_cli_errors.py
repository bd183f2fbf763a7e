"""Mistakes end before work: at most three lines, no traceback, exit 2, no Prefect server."""

from __future__ import annotations

from pathlib import Path

import pytest

from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import Project
from prelabel.labelstudio.server import LocalLabelStudio, free_port
from tests.conftest import run_prelabel
from tests.support.http_faults import Site, serve
from tests.support.videos import write_video


def _mistake(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a command that must fail before any flow starts; return its stderr."""
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "images" / "a.jpg").write_bytes(make_samples()[0].data)
    # A Prefect API that counts what it is asked (and answers 500): a flow that started would ask it.
    with serve(Site({})) as prefect:
        done = run_prelabel(
            *args, cwd=tmp_path, env={"PREFECT_API_URL": f"{prefect.url}/error/api", **(env or {})}
        )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert 1 <= len(lines) <= 3, done.stderr
    assert all(line.startswith("prelabel: error: ") for line in lines), done.stderr
    assert "Traceback" not in done.stderr + done.stdout and done.stdout == ""
    assert not prefect.hits, prefect.hits  # ended before any work: Prefect was never asked
    return done.stderr


RUN = ("run", "--input-dir", "images", "--project-id", "1", "--model", "ocr")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--batch-size", "20000"], "--batch-size"),  # the flow parameter's range, checked by the CLI
        (["--model-option", "token=x"], "looks like a secret"),  # would be stored as a parameter
        (["--model-option", "nope=1"], "has no option 'nope'; its options: label, min_score"),
        (["--model-option", "novalue"], "expected KEY=VALUE"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--project-id", "0"], "--project-id"),
    ],
)
def test_bad_options(tmp_path: Path, extra: list[str], says: str) -> None:
    assert says in _mistake(tmp_path, *RUN, *extra, env={"PRELABEL_LS_API_KEY": "k"})


def test_missing_key(tmp_path: Path) -> None:
    env = {"PRELABEL_LS_API_KEY": "", "LABEL_STUDIO_API_KEY": ""}
    assert "no Label Studio API key" in _mistake(tmp_path, *RUN, env=env)


def test_unreachable_label_studio(tmp_path: Path) -> None:
    env = {"PRELABEL_LS_API_KEY": "k", "PRELABEL_LS_URL": f"http://127.0.0.1:{free_port()}"}
    assert "did not answer" in _mistake(tmp_path, *RUN, env=env)
    # a Label Studio whose /api/version answers 500: the check tries 5 times (4 retries), then gives up
    with serve(Site({"api/version": b""})) as failing:
        env["PRELABEL_LS_URL"] = f"{failing.url}/error"
        said = _mistake(tmp_path, *RUN, env=env)
    assert "did not answer" in said and sum(failing.hits.values()) == 5, failing.hits


@pytest.mark.labelstudio
def test_wrong_key_and_unknown_project(
    label_studio: LocalLabelStudio, project: Project, tmp_path: Path
) -> None:
    good = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    wrong = {**good, "PRELABEL_LS_API_KEY": "not-the-key"}
    assert "refused the API key (401)" in _mistake(tmp_path, *RUN, env=wrong)
    missing = ["run", "--input-dir", "images", "--project-id", "99999", "--model", "ocr"]
    assert "has no project 99999" in _mistake(tmp_path, *missing, env=good)
    assert "has no project 99999" in _mistake(
        tmp_path, "pull", "--project-id", "99999", "--output-dir", "pulled", env=good
    )


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "empty" / ".hidden").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    (tmp_path / "empty" / ".hidden" / "x.jpg").write_bytes(b"hidden: skipped")
    key = {"PRELABEL_LS_API_KEY": "k"}
    base = ("run", "--project-id", "1", "--model", "ocr", "--input-dir")
    assert (
        _mistake(tmp_path, *base, "nothere", env=key)
        == "prelabel: error: --input-dir nothere: no such folder\n"
    )
    said = _mistake(tmp_path, *base, "empty", env=key)
    assert said.startswith(
        "prelabel: error: 0 images found in empty (prelabel reads .bmp, .gif, .jfif, .jpeg"
    )
    # a video model looks for videos (the image is not one), and says so
    video = ("run", "--project-id", "1", "--model", "sam3-video", "--input-dir", "images")
    said = _mistake(tmp_path, *video, env=key)
    assert said.startswith("prelabel: error: 0 videos found in images (prelabel reads .avi, .m4v, .mkv")


def test_detect_track_refuses_its_detector_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    write_video(tmp_path / "videos" / "a.webm", frames=2)
    key = {"PRELABEL_LS_API_KEY": "k"}
    run = ("run", "--project-id", "1", "--input-dir", "videos", "--model", "detect-track", "--model-option")
    assert "the detector 'sam3-video' tracks videos itself" in _mistake(
        tmp_path, *run, "detector=sam3-video", env=key
    )
    # the detector's options go to it (detector.<option>): one it lacks is named with its own
    said = _mistake(tmp_path, *run, "detector=detr", "--model-option", "detector.nope=1", env=key)
    assert "model 'detr' has no option 'nope'; its options: checkpoint" in said
