"""Refused predictions: a chunk Label Studio refuses as invalid is posted in halves.

A server with prediction validation on (its feature flag set at start) refuses a whole bulk
import with 400 for one invalid prediction and stores none of it. The good predictions of
the chunk are still posted, once; each refused one becomes its task's failure with the
server's reason, and a rerun tries it again without duplicating anything.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from prelabel.ingest.samples import LABEL_CONFIG
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.posting import PostReport, post_predictions
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.records import Detections, PredictionRecord
from tasks.common import LabelStudioConnection
from tasks.labelstudio import post_batch
from tests.conftest import quick_client, random_image_item
from tests.support.fault_proxy import Rule, fault_proxy

# Two ways Label Studio's validator refuses a rectangle (checked against the running server).
INVALID: dict[int, dict[str, Any]] = {
    3: {"rectanglelabels": ["unicorn"]},  # a label the config does not have
    7: {"width": 150.0},  # wider than the image (percent out of [0, 100])
}


@pytest.fixture
def strict_client(strict_label_studio: LocalLabelStudio) -> Iterator[LabelStudioClient]:
    with quick_client(strict_label_studio) as client:
        yield client


def _prediction(i: int, **value: Any) -> dict[str, Any]:
    box = {
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
        "value": {**box, **value},
    }
    return {"result": [result], "score": 0.9}


def _setup(client: LabelStudioClient, n: int = 10) -> tuple[Project, list[int], dict[int, dict[str, Any]]]:
    """A project with ``n`` tasks, a prediction for each, invalid ones at the ``INVALID`` places."""
    project = client.create_project("prelabel refused chunk", LABEL_CONFIG)
    ids = client.import_tasks(project.id, [{"data": {"image": f"s3://b/img_{i:02d}.jpg"}} for i in range(n)])
    return project, ids, {t: _prediction(i, **INVALID.get(i, {})) for i, t in enumerate(ids)}


def _versions(client: LabelStudioClient, project: Project) -> dict[int, frozenset[str]]:
    return {t.id: t.model_versions for t in client.iter_tasks(project.id)}


def _counts(client: LabelStudioClient, project: Project) -> dict[int, int]:
    """How many predictions of v1 each task holds, read from Label Studio."""
    return {
        task.id: Counter(p.get("model_version") for p in task.predictions)["v1"]
        for task in client.iter_tasks(project.id, full=True)
    }


def _post(client: LabelStudioClient, project: Project, predictions: dict[int, dict[str, Any]]) -> PostReport:
    return post_predictions(client, project.id, predictions, "v1", _versions(client, project), chunk_size=10)


def test_a_refused_chunk_posts_its_good_predictions_once(strict_client: LabelStudioClient) -> None:
    project, ids, predictions = _setup(strict_client)
    bad = [ids[i] for i in INVALID]

    report = _post(strict_client, project, predictions)

    counts = _counts(strict_client, project)
    assert [t for t in ids if counts[t] != (0 if t in bad else 1)] == []
    assert report.created == 8 and report.recovered == 0
    assert sorted(report.refused) == sorted(bad)
    assert "valid labels: ['civilian vehicle', 'person'" in report.refused[ids[3]]
    assert (
        report.refused[ids[7]]
        == "Region 0: Invalid geometry for control 'label': width 150.0 out of bounds [0, 100]"
    )
    # Each refused prediction costs at most a post of each half and a re-read per level.
    levels = math.ceil(math.log2(len(ids)))
    assert report.requests <= 1 + 2 * len(bad) * levels
    assert report.rechecks <= len(bad) * levels

    again = _post(strict_client, project, predictions)  # the rerun: only the refused are tried
    assert sorted(again.skipped) == sorted(set(ids) - set(bad))
    assert again.created == 0 and sorted(again.refused) == sorted(bad)
    assert _counts(strict_client, project) == counts


@pytest.mark.parametrize("after", [0, 2, 4, 6])
def test_a_lost_answer_during_the_split_changes_nothing(
    strict_client: LabelStudioClient, strict_label_studio: LocalLabelStudio, after: int
) -> None:
    # The proxy forwards one bulk POST (after ``after`` others) and answers 502 instead of
    # Label Studio's answer (a refusal, or a half stored): the outcome is the same.
    project, ids, predictions = _setup(strict_client)
    with (
        fault_proxy(strict_label_studio.url) as proxy,
        LabelStudioClient(
            proxy.url, strict_label_studio.legacy_token, timeout=30, retries=2, backoff=0.1
        ) as client,
    ):
        proxy.add(Rule("502", path="/import/predictions", after=after))
        report = _post(client, project, predictions)
        assert proxy.caught("502") == 1
    bad = [ids[i] for i in INVALID]
    counts = _counts(strict_client, project)
    assert [t for t in ids if counts[t] != (0 if t in bad else 1)] == []
    assert report.created == 8 and sorted(report.refused) == sorted(bad)


def test_chunks_of_one_are_refused_without_a_split(strict_client: LabelStudioClient) -> None:
    # Chunks of one: the refusal is already isolated, so nothing is read again or split.
    project, ids, predictions = _setup(strict_client, 8)
    report = post_predictions(
        strict_client, project.id, predictions, "v1", _versions(strict_client, project), chunk_size=1
    )
    assert (report.created, report.requests, report.rechecks) == (6, 8, 0)
    assert sorted(report.refused) == [ids[3], ids[7]]


def test_validation_off_costs_nothing_more(ls_client: LabelStudioClient) -> None:
    # Every prediction stored: one request, nothing read again.
    project, ids, _ = _setup(ls_client)
    report = _post(ls_client, project, {t: _prediction(i) for i, t in enumerate(ids)})
    assert (report.created, report.requests, report.rechecks, report.refused) == (10, 1, 0, {})


def test_validation_off_drops_invalid_ones_in_silence(ls_client: LabelStudioClient) -> None:
    # The default server answers 201 {"created": 8}: one read names the two it dropped.
    project, ids, predictions = _setup(ls_client)
    bad = [ids[i] for i in INVALID]
    report = _post(ls_client, project, predictions)
    assert (report.created, report.requests, report.rechecks) == (8, 1, 1)
    assert sorted(report.refused) == sorted(bad)
    assert "stored 8 of the 10 predictions sent and dropped this one" in report.refused[bad[0]]
    counts = _counts(ls_client, project)
    assert [t for t in ids if counts[t] != (0 if t in bad else 1)] == []


def test_a_task_deleted_before_the_post_is_refused_alone(ls_client: LabelStudioClient) -> None:
    # Validation off, but a task deleted since the run listed it makes the chunk a 400 too.
    project, ids, _ = _setup(ls_client)
    predictions = {t: _prediction(i) for i, t in enumerate(ids)}
    versions = _versions(ls_client, project)
    ls_client.request("DELETE", f"/api/tasks/{ids[5]}/")

    report = post_predictions(ls_client, project.id, predictions, "v1", versions, chunk_size=10)

    assert report.created == 9 and list(report.refused) == [ids[5]]
    assert 'invalid "task" field' in report.refused[ids[5]]
    assert set(_counts(ls_client, project).values()) == {1}


def test_the_post_task_makes_an_error_row_per_refused_image(
    strict_client: LabelStudioClient, strict_label_studio: LocalLabelStudio
) -> None:
    # The labeling config loses "traffic light" while the run holds the old one.
    project = strict_client.create_project("prelabel config edited mid-run", LABEL_CONFIG)
    items = [random_image_item(seed, (64, 48)) for seed in range(6)]
    ids = strict_client.import_tasks(project.id, [{"data": {"image": f"s3://b/{it.uri}"}} for it in items])
    box = np.array([[4.0, 4.0, 30.0, 20.0]])
    records = [
        PredictionRecord(it.info, Detections(box, np.array([0.8]), (label,)), uri=it.uri, task_id=t)
        for it, t, label in zip(items, ids, ["person", "traffic light"] * 3, strict=True)
    ]
    edited = LABEL_CONFIG.replace('<Label value="traffic light" background="#ffe119"/>', "")
    strict_client.update_project(project.id, {"label_config": edited})

    connection = LabelStudioConnection(strict_label_studio.url, strict_label_studio.legacy_token)
    built, report = post_batch.fn(
        connection,
        project,
        records,
        _versions(strict_client, project),
        LabelMap({}),
        "v1",
        overwrite=False,
        dry_run=False,
        masks=None,
        polygon_tolerance=1.0,
        chunk_size=500,
    )

    assert report.created == 3
    assert [(row.file, str(row.stage)) for row in built.errors] == [
        ("1.png", "post"),
        ("3.png", "post"),
        ("5.png", "post"),
    ]
    assert all(
        "refused the prediction: Region 0: Invalid value" in row.error and "traffic light" in row.error
        for row in built.errors
    )
    assert strict_label_studio.legacy_token.get_secret_value() not in "".join(
        row.error for row in built.errors
    )
