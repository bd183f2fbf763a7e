"""Review apply labelstudio: the tests of `test_review_apply.py` that need real servers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from flows.features import FeaturesParams, features
from flows.params import PreannotateParams
from flows.preannotate import preannotate
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.review.sets import ReviewSet, items_from_tasks
from tests.support.cli import CliRun
from tests.support.random_models import save_dinov2_registers
from tests.unit.review.test_review_apply import LABEL, _scenes


def _params(
    project: Project, tmp_path: Path, images: Path, version: str, **extra: object
) -> PreannotateParams:
    return PreannotateParams.model_validate(
        {
            "project_id": project.id,
            "input_dir": str(images),
            "model": "raw-files",
            "import_new": True,
            "model_version": version,
            "output_dir": str(tmp_path / "out"),
            "unmatched_csv": str(tmp_path / "out" / "unmatched_labels.csv"),
            "batch_size": 3,
            **extra,
        }
    )


def _results(client: LabelStudioClient, project: Project, version: str) -> dict[int, list[dict[str, object]]]:
    out = {}
    for task in client.iter_tasks(project.id, full=True):
        for prediction in task.predictions:
            if prediction.get("model_version") == version:
                out[task.id] = prediction["result"]
    return out


def _x(result: dict[str, object]) -> float:
    return float(result["value"]["x"])  # type: ignore[index]


@pytest.mark.usefixtures("prefect_server", "label_studio_env")
def test_answers_back_into_label_studio_and_a_verifier_for_the_next_run(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    project: Project,
    tmp_path: Path,
    cli: CliRun,
) -> None:
    # 1. Predictions: two boxes on each of 8 images.
    first = preannotate(_params(project, tmp_path, _scenes(tmp_path / "first", range(8)), "boxes-v1"))
    assert first.posted == 8
    original = _results(ls_client, project, "boxes-v1")

    # 2. A review set of the boxes, their features, and answers: yes to the flat box, no to noise.
    items, _ = items_from_tasks(ls_client.iter_tasks(project.id, full=True), "boxes-v1", "image", "box")
    meta = {"source": "project", "project_id": project.id, "model_version": "boxes-v1", "per": "box"}
    set_path = tmp_path / "people.sqlite"
    ReviewSet.create(set_path, items, meta).close()
    checkpoint = save_dinov2_registers(tmp_path / "tiny-dinov2")
    features(
        FeaturesParams(
            review_set=str(set_path),
            checkpoint=str(checkpoint),
            device="cpu",
            cache_dir=str(tmp_path / "cache"),
            ls_url=label_studio.url,
        )
    )
    with ReviewSet(set_path) as review_set:
        stored = review_set.items()
        assert len(stored) == 16
        for number, item in enumerate(stored):
            assert item.box is not None
            review_set.record(item.id, item.box[0] < 48, held_out=number >= 12, strategy="entropy")

    # 3. review apply: <version>-reviewed without the rejected regions, the kept ones marked.
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = cli("review", "apply", "--set", str(set_path), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "boxes-v1-reviewed in project" in done.stdout and "8 created" in done.stdout
    assert "8 rejected results removed, 8 accepted regions marked" in done.stdout
    reviewed = _results(ls_client, project, "boxes-v1-reviewed")
    assert sorted(reviewed) == sorted(original)
    for task_id, results in reviewed.items():  # the flat box, as it was, marked accepted
        assert results == [{**r, "meta": {"reviewed": True}} for r in original[task_id] if _x(r) < 50]
        assert len(original[task_id]) == 2
    with (tmp_path / "people.answers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and sum(r["answer"] == "no" for r in rows) == 8
    assert {r["region_id"] for r in rows if r["answer"] == "no"} == {
        str(r["id"]) for results in original.values() for r in results if _x(r) > 50
    }
    again = cli("review", "apply", "--set", str(set_path), env=env)  # nothing new: nothing written
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 created, 0 updated in place, 8 unchanged" in again.stdout
    assert ls_client.model_versions(project.id)["boxes-v1-reviewed"] == 8

    # 4. The verifier, saved as plain numbers with its metrics.
    trained = cli(
        "review",
        "verifier",
        "--set",
        str(set_path),
        "--features",
        str(tmp_path / "people.dinov2.parquet"),
        "--name",
        "flat",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    saved = tmp_path / "people.verifier.json"
    data = json.loads(saved.read_text())
    assert data["format"] == "prelabel-verifier/1" and data["embedder"] == "dinov2"
    model = data["labels"][LABEL]
    assert (model["trained_on"], model["positives"], model["held_out"]) == (12, 6, 4)
    assert len(model["weights"]) == 16 and model["held_out_accuracy"] == 1.0

    # 5. A new run with the verifier: the noise boxes are dropped, the report says so.
    run = preannotate(
        _params(
            project,
            tmp_path,
            _scenes(tmp_path / "second", range(20, 26)),
            "boxes-v2",
            verifier=str(saved),
            min_verified=0.5,
        )
    )
    assert run.model_version == "boxes-v2-verified-flat-0.5"
    assert run.verified == {f"{LABEL} kept": 6, f"{LABEL} dropped": 6}
    assert f"| {LABEL} | 6 | 6 | 0 |" in run.markdown()
    posted = _results(ls_client, project, run.model_version)
    assert len(posted) == 6 and all(len(r) == 1 and _x(r[0]) < 50 for r in posted.values())
    # The cache (none for raw files) aside, a threshold of 0 keeps everything under its own version.
    everything = preannotate(
        _params(project, tmp_path, tmp_path / "second", "boxes-v2", verifier=str(saved), min_verified=0.0)
    )
    assert everything.model_version == "boxes-v2-verified-flat-0" and everything.verified == {
        f"{LABEL} kept": 12
    }
