"""Exactly once: posting and task import through a fault proxy in front of the real Label Studio.

The proxy forwards a write and then loses the answer (a 502, a dropped connection), makes
the server unreachable for seconds, or answers 503 to reads. Whatever it does, every task
ends with exactly one prediction of the run's version, and every image with exactly one task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from prelabel.core.errors import AmbiguousWriteError
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.importing import import_images
from prelabel.labelstudio.matching import task_file_name
from prelabel.labelstudio.posting import post_predictions
from prelabel.labelstudio.server import LocalLabelStudio
from tests.conftest import encode_image
from tests.support.fault_proxy import FaultProxy, Rule, fault_proxy

POSTS = "/import/predictions"

# Each case: the rules that catch the second bulk write (the first goes through untouched).
FAULTS: dict[str, list[Rule]] = {
    # Label Studio stores the write, the gateway answers 502.
    "502 after commit": [Rule("502", path=POSTS, after=1)],
    # Label Studio stores the write, the connection drops before the answer.
    "dropped after commit": [Rule("drop", path=POSTS, after=1)],
    # The write never arrives and the server is unreachable for 1.5 s (connection refused).
    "unreachable for seconds": [Rule("down", path=POSTS, after=1, seconds=1.5)],
    # Two writes in a row lose their answer, and the reads that follow are refused with 503.
    "503 on reads": [
        Rule("502", path=POSTS, after=1, times=2),
        Rule("503", method="GET", path="/api/tasks", times=2),
    ],
}
_ACTION = {
    "502 after commit": "502",
    "dropped after commit": "drop",
    "unreachable for seconds": "down",
    "503 on reads": "503",
}


@pytest.fixture
def proxy(label_studio: LocalLabelStudio) -> Iterator[FaultProxy]:
    with fault_proxy(label_studio.url) as running:
        yield running


@pytest.fixture
def patient(label_studio: LocalLabelStudio, proxy: FaultProxy) -> Iterator[LabelStudioClient]:
    """A client that talks through the proxy and waits out a few seconds of outage."""
    with LabelStudioClient(
        proxy.url, label_studio.legacy_token, timeout=30, retries=8, backoff=0.2, max_backoff=1.0
    ) as client:
        yield client


def _prediction(i: int) -> dict[str, Any]:
    value = {
        "x": 10.0,
        "y": 5.0 + i,
        "width": 20.0,
        "height": 30.0,
        "rotation": 0,
        "rectanglelabels": ["person"],
    }
    result = {
        "id": f"r{i}",
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 640,
        "original_height": 480,
        "value": value,
    }
    return {"result": [result], "score": 0.9}


def _tasks(client: LabelStudioClient, project: Project, n: int) -> list[int]:
    data = [{"data": {"image": f"s3://bucket/img_{i:04d}.jpg"}} for i in range(n)]
    return client.import_tasks(project.id, data)


def _counts(client: LabelStudioClient, project: Project) -> dict[int, Counter[str]]:
    """Predictions per task and model version, read directly from Label Studio."""
    return {
        task.id: Counter(str(p.get("model_version")) for p in task.predictions)
        for task in client.iter_tasks(project.id, full=True)
    }


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_posting_puts_each_prediction_once_behind_faults(
    ls_client: LabelStudioClient,
    patient: LabelStudioClient,
    proxy: FaultProxy,
    project: Project,
    fault: str,
    overwrite: bool,
) -> None:
    ids = _tasks(ls_client, project, 24)
    predictions = {task_id: _prediction(i) for i, task_id in enumerate(ids)}
    # Before: v1 on the first 12 tasks with overwrite (to be replaced), else on the first 4
    # (to be skipped); another version on tasks 8-15, which must keep it.
    before = ids[: 12 if overwrite else 4]
    ls_client.import_predictions(
        project.id, [{**predictions[t], "task": t, "model_version": "v1"} for t in before]
    )
    ls_client.import_predictions(
        project.id, [{"task": t, "result": [], "model_version": "v2"} for t in ids[8:16]]
    )
    existing = {t: frozenset(c) for t, c in _counts(ls_client, project).items()}

    proxy.add(*FAULTS[fault])
    report = post_predictions(
        patient, project.id, predictions, "v1", existing, chunk_size=8, overwrite=overwrite
    )

    assert proxy.caught(_ACTION[fault]) >= 1  # the fault did happen
    counts = _counts(ls_client, project)
    assert sorted(counts) == sorted(ids)
    assert [t for t in ids if counts[t]["v1"] != 1] == []  # none twice, none missing
    assert [t for t in ids[8:16] if counts[t]["v2"] != 1] == []  # the other version untouched
    assert sum(c["v2"] for c in counts.values()) == 8
    expected = 24 if overwrite else 20
    assert report.created == expected
    assert report.replaced == (12 if overwrite else 0)
    if fault == "unreachable for seconds":
        assert report.recovered == 0  # never arrived: posted again, after a re-read
    else:
        assert report.recovered >= 8  # stored behind the lost answer: found, not posted again


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_a_retried_batch_posts_only_what_is_still_missing(
    ls_client: LabelStudioClient,
    patient: LabelStudioClient,
    proxy: FaultProxy,
    project: Project,
    overwrite: bool,
) -> None:
    ids = _tasks(ls_client, project, 24)
    predictions = {task_id: _prediction(i) for i, task_id in enumerate(ids)}
    stale = {t: frozenset[str]() for t in ids}  # read before the first attempt, as a retried task has it

    proxy.add(Rule("502", path=POSTS, after=1))
    with pytest.raises(AmbiguousWriteError):  # the first attempt gives up on its second chunk
        post_predictions(
            patient, project.id, predictions, "v1", stale, chunk_size=8, overwrite=overwrite, max_rounds=1
        )
    assert sum(c["v1"] for c in _counts(ls_client, project).values()) == 16  # chunks 1 and 2 stored

    again = post_predictions(
        patient, project.id, predictions, "v1", stale, chunk_size=8, overwrite=overwrite, recheck=True
    )
    counts = _counts(ls_client, project)
    assert [t for t in ids if counts[t]["v1"] != 1] == []
    if overwrite:
        assert (again.replaced, again.created) == (16, 24)
    else:
        assert (sorted(again.skipped), again.created) == (sorted(ids[:16]), 8)
        assert again.rechecks == 3  # one read per chunk


IMPORTS = "/import"
IMPORT_FAULTS: dict[str, list[Rule]] = {
    "502 after commit": [Rule("502", path=IMPORTS, after=1)],
    "dropped after commit": [Rule("drop", path=IMPORTS, after=1)],
    "unreachable for seconds": [Rule("down", path=IMPORTS, after=1, seconds=1.5)],
    "503 on reads": [
        Rule("502", path=IMPORTS, after=1, times=2),
        Rule("503", method="GET", path="/api/tasks", times=2),
    ],
}


@pytest.mark.parametrize("kind", ["urls", "uploads"])
@pytest.mark.parametrize("fault", list(IMPORT_FAULTS))
def test_import_creates_each_task_once_behind_faults(
    ls_client: LabelStudioClient,
    patient: LabelStudioClient,
    proxy: FaultProxy,
    project: Project,
    tmp_path: Path,
    fault: str,
    kind: str,
) -> None:
    if kind == "urls":
        images = [f"s3://bucket/photos/img_{i:04d}.jpg" for i in range(12)]
    else:
        images = []
        for i in range(12):
            path = tmp_path / f"img_{i:04d}.jpg"
            path.write_bytes(encode_image(Image.new("RGB", (16, 12), (i * 20, 0, 0))))
            images.append(str(path))
    present = ls_client.import_tasks(project.id, [{"data": {"image": "s3://bucket/photos/already.jpg"}}])

    proxy.add(*IMPORT_FAULTS[fault])
    tasks = list(ls_client.iter_tasks(project.id))
    report = import_images(
        patient, project.id, "image", [*images, "s3://bucket/photos/already.jpg"], tasks, batch_size=4
    )

    assert proxy.caught(_ACTION[fault]) >= 1
    listing = list(ls_client.iter_tasks(project.id))
    names = Counter(task_file_name(t.image_ref("image")) for t in listing)
    assert len(listing) == 13
    assert {name for name, n in names.items() if n != 1} == set()  # no image twice
    assert set(report.created) == set(images)  # each image mapped to its task
    assert sorted(report.created.values()) == sorted(t.id for t in listing if t.id not in present)
    assert report.present == {"s3://bucket/photos/already.jpg": present[0]}
    lost_answers = {"unreachable for seconds": 0, "503 on reads": 2}.get(fault, 1)
    assert report.recovered == 4 * lost_answers  # found after a lost answer, not imported again
