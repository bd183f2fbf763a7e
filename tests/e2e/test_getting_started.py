"""The getting-started page, word for word: the commands of "Your first real project" run in
bash against the session's Label Studio, as a new user would type them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from prelabel.labelstudio.server import LocalLabelStudio
from tests.conftest import quick_client, write_image
from tests.support import REPO

ROOT = REPO
PAGE = ROOT / "docs" / "getting-started.md"
_BLOCK = re.compile(r"(<!-- not run: [^>]+ -->\n)?```bash\n(.*?)```", re.DOTALL)


def section(text: str, title: str) -> str:
    """The part of a page under the heading ``## title``, up to the next such heading."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def commands(part: str) -> list[str]:
    """The bash blocks of ``part`` a user runs as written (a block marked "not run" holds
    the user's own values, which the test sets itself)."""
    return [body for skipped, body in _BLOCK.findall(part) if not skipped]


def test_the_blocks_are_found() -> None:
    """The parser sees the page's blocks: every one but the credentials runs, in order."""
    blocks = commands(section(PAGE.read_text(), "Your first real project"))
    assert [b.split()[0] for b in blocks] == ["PROJECT=$(prelabel", "prelabel", "prelabel", "prelabel"]


def test_first_real_project_word_for_word(
    label_studio: LocalLabelStudio, prefect_server: str, tmp_path: Path
) -> None:
    from prelabel.ingest.samples import make_samples

    photos = tmp_path / "photos"
    photos.mkdir()
    samples = make_samples()
    for sample in samples:
        write_image(photos, sample.name, sample.data)
    script = "set -euo pipefail\n" + "\n".join(commands(section(PAGE.read_text(), "Your first real project")))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),  # this checkout's code, as `prelabel` runs it
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.personal_token.get_secret_value(),
        "PRELABEL_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    project_id = int(re.findall(r"^project (\d+): Shop signs$", done.stdout, re.MULTILINE)[0])
    with quick_client(label_studio) as client:
        tasks = list(client.iter_tasks(project_id, full=True))
        assert len(tasks) == len(samples)
        assert all(len(task.predictions) == 1 for task in tasks)  # the rerun posted nothing twice
    # The rerun, last on the page, skipped every task and called no model.
    last = done.stdout.rsplit("# prelabel: project", 1)[1]
    assert re.search(rf"skipped \(already have this model version\) \| {len(samples)} \|", last), last
    assert re.search(r"predictions posted \| 0 \|", last), last
