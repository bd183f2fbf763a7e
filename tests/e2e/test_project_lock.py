"""One run per project: a second run waits, says who holds the project and since when, and gives
up after --wait in one line with exit code 3; the lock is keyed by Label Studio server + project."""

from __future__ import annotations

import threading
from pathlib import Path

from prefect import flow

from flows.lock import lock_name, project_lock
from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import Project
from prelabel.labelstudio.server import LocalLabelStudio
from tests.conftest import run_prelabel


def test_the_lock_is_keyed_by_server_and_project() -> None:
    names = {lock_name(url, project) for url in ("http://a:8080", "http://b:8080") for project in (3, 4)}
    assert len(names) == 4
    assert lock_name("http://a:8080/", 3) == lock_name("http://a:8080", 3)


def test_a_second_run_waits_then_gives_up_in_one_line(
    label_studio: LocalLabelStudio, project: Project, prefect_server: str, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    sample = make_samples()[0]
    (images / sample.name).write_bytes(sample.data)
    held, release = threading.Event(), threading.Event()

    @flow(name="holds-the-project")
    def holder() -> None:
        with project_lock(label_studio.url, project.id, wait_seconds=5):
            held.set()
            release.wait(120)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(60)
        env = {
            "PRELABEL_LS_URL": label_studio.url,
            "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
        }
        done = run_prelabel(
            "run",
            "--input-dir",
            "images",
            "--project-id",
            str(project.id),
            "--model",
            "ocr",
            "--wait",
            "2",
            cwd=tmp_path,
            env=env,
        )
    finally:
        release.set()
        thread.join(60)
    assert done.returncode == 3, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("prelabel: ")]
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(
        f"prelabel: error: project {project.id} at {label_studio.url} is still held by flow run '"
    ), lines[0]
    assert lines[0].endswith("after 2 s; wait for that run or stop it, or raise --wait"), lines[0]
    assert "is held by flow run '" in done.stderr and "waiting up to 2 s" in done.stderr  # said while waiting
    assert "Traceback" not in done.stderr
