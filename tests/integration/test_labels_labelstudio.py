"""Labels labelstudio: the tests of `test_labels.py` that need real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.predictions import build_prediction
from prelabel.labelstudio.server import LocalLabelStudio
from tests.unit.labelstudio.test_labels import ALIASED, _aliased_record


def test_aliases_are_posted_to_label_studio_and_read_back(
    strict_label_studio: LocalLabelStudio, tmp_path: Path
) -> None:
    """On a Label Studio that validates predictions: the labels' values where they have aliases
    are refused (the whole image's prediction lost, as before); what prelabel posts is stored,
    and an annotation made from it is pulled back with the config's labels."""
    import copy
    import dataclasses
    import json

    from prelabel.core.errors import LabelStudioError
    from prelabel.labelstudio.pullback import pull_annotations
    from tests.conftest import quick_client

    with quick_client(strict_label_studio) as client:
        project = client.create_project("prelabel aliases", ALIASED)
        (task_id,) = client.import_tasks(project.id, [{"data": {"image": "s3://bucket/street.jpg"}}])
        record = dataclasses.replace(_aliased_record(), task_id=task_id)
        prediction, _ = build_prediction(record, project.config, LabelMap({"car": "CV"}), "aliases-v1")
        as_before = copy.deepcopy(prediction)
        as_before["result"][0]["value"]["rectanglelabels"] = ["civilian vehicle"]  # the value, not "CV"
        with pytest.raises(LabelStudioError) as refused:
            client.import_predictions(project.id, [{**as_before, "task": task_id}])
        assert refused.value.status == 400 and "CV" in refused.value.detail
        assert client.import_predictions(project.id, [{**prediction, "task": task_id}]) == 1

        (task,) = client.iter_tasks(project.id, full=True)
        (stored,) = task.predictions
        kept = {(r["from_name"], r["id"]): r["value"].get(r["type"]) for r in stored["result"]}
        assert kept[("label", "det0")] == ["CV"] and kept[("scene", "scene")] == ["N"]
        assert kept == {(r["from_name"], r["id"]): r["value"].get(r["type"]) for r in prediction["result"]}

        client.create_annotation(task_id, stored["result"], parent_prediction=stored["id"])
        report = pull_annotations(client, project.id, tmp_path / "pulled", formats=("coco",))
    assert report.errors == []
    coco = json.loads((tmp_path / "pulled" / "annotations.coco.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted(names[a["category_id"]] for a in coco["annotations"]) == [
        "civilian vehicle",
        "civilian vehicle",
        "person",
        "person",
    ]
    assert "CV" not in names.values() and "P" not in names.values()
