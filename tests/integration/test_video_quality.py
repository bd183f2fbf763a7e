"""Quality of a video project: a model version's tracks against people's, per label (MOTA, IDF1,
HOTA), from hand-made keyframes whose numbers are known; through the flow against the real
Label Studio as a user runs it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.projects import build_label_config, build_video_config
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.quality.tracks import TRACK_COLUMNS, is_video_project, measure_tracks, pair_videos
from tests.support.cli import CliRun

CONFIG = parse_label_config(build_video_config(["car", "person"]))
BOX = {"y": 10.0, "width": 10.0, "height": 20.0, "rotation": 0}


def _key(frame: int, x: float, enabled: bool = True) -> dict[str, Any]:
    return {"frame": frame, "time": frame / 10, "x": x, "enabled": enabled, **BOX}


def _region(rid: str, label: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
    value = {"framesCount": 10, "duration": 1.0, "labels": [label], "sequence": keys}
    return {"id": rid, "type": "videorectangle", "from_name": "box", "to_name": "video", "value": value}


# People: a car moving right (x = 10 + 2 (f - 1) percent) through frames 1-10, a person on 3 and 4.
PEOPLE = [
    _region("c", "car", [_key(1, 10), _key(10, 28)]),
    _region("p", "person", [_key(3, 50), _key(4, 50, enabled=False)]),
]
# The model: the same car boxes, but one identity on 1-5 (ended there) and another on 6-10; no person.
MODEL = [
    _region("t1", "car", [_key(1, 10), _key(5, 18, enabled=False)]),
    _region("t2", "car", [_key(6, 20), _key(10, 28)]),
]


def _task(task_id: int, data: dict[str, Any], annotations: list[Any], predictions: list[Any]) -> Task:
    return Task(
        id=task_id,
        data={"video": f"/data/upload/1/{task_id}.mp4", **data},
        annotations=annotations,
        predictions=predictions,
    )


def test_a_switched_identity_and_a_missed_track_give_known_numbers() -> None:
    sized = {"fps": 10, "width": 200, "height": 100}
    tasks = [
        _task(1, sized, [{"id": 11, "result": PEOPLE}], [{"model_version": "v1", "result": MODEL}]),
        # no frame size: boxes in percent, the same IoU for unrotated boxes, so the same numbers
        _task(2, {}, [{"id": 12, "result": PEOPLE[:1]}], [{"model_version": "v1", "result": MODEL}]),
        _task(3, sized, [], [{"model_version": "v1", "result": MODEL}]),  # predicted, not annotated yet
        _task(4, sized, [{"id": 14, "result": PEOPLE}], [{"model_version": "v0", "result": PEOPLE}]),
        _task(
            5,
            sized,
            [{"id": 15, "result": [_region("bad", "car", [{"frame": 1}])]}],
            [{"model_version": "v1", "result": MODEL}],
        ),  # unreadable: an error row, left out
        _task(
            6,
            sized,
            [{"id": 16, "result": PEOPLE, "was_cancelled": True}],
            [{"model_version": "v1", "result": MODEL}],
        ),  # a cancelled annotation does not count
    ]
    pairs = pair_videos(tasks, CONFIG, "v1")
    assert [p.name for p in pairs.videos] == ["1.mp4", "2.mp4"] and pairs.unannotated == 2
    (error,) = pairs.errors
    assert error.file == "5.mp4" and "annotation 15: region bad: keyframe 0 needs frame" in error.error
    car, person = measure_tracks(pairs, project_id=7).labels
    assert (car.label, car.videos, car.people_tracks, car.model_tracks) == ("car", 2, 2, 4)
    assert (car.people_boxes, car.model_boxes, car.id_switches, car.misses, car.false_positives) == (
        20,
        20,
        2,
        0,
        0,
    )
    assert car.mota == pytest.approx(0.9)  # 1 - 2 switches / 20 boxes
    assert car.idf1 == pytest.approx(0.5)  # each person's car is the model's for half its frames
    assert car.hota == pytest.approx(0.5**0.5) and car.deta == pytest.approx(1.0)  # AssA 0.5
    assert (person.people_boxes, person.model_boxes, person.misses, person.mota) == (2, 0, 2, 0.0)
    assert person.idf1 == 0.0 and person.hota == 0.0


def test_a_video_project_is_told_by_its_config() -> None:
    assert is_video_project(CONFIG)
    assert not is_video_project(parse_label_config(build_label_config(["car"], ["box"])))


def test_quality_of_a_video_project_through_the_flow(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    tmp_path: Path,
    cli: CliRun,
) -> None:
    project = ls_client.create_project("prelabel video quality", build_video_config(["car", "person"]))
    data = {"video": "/data/upload/1/street.mp4", "fps": 10, "width": 200, "height": 100}
    (task,) = ls_client.import_tasks(project.id, [{"data": data}])
    ls_client.import_predictions(project.id, [{"task": task, "result": MODEL, "model_version": "tracks-v1"}])
    ls_client.create_annotation(task, PEOPLE)
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = cli(
        "quality",
        "--project-id",
        str(project.id),
        "--model-version",
        "tracks-v1",
        "--out",
        "q",
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert (summary["videos"], summary["unannotated"], summary["errors"]) == (1, 0, 0)
    with (tmp_path / "q" / "tracks.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == TRACK_COLUMNS
        rows = {r["label"]: r for r in reader}
    car = rows["car"]
    assert (car["id_switches"], car["people_boxes"], car["model_boxes"]) == ("1", "10", "10")
    assert float(car["mota"]) == pytest.approx(0.9) and float(car["idf1"]) == pytest.approx(0.5)
    assert float(car["hota"]) == pytest.approx(0.5**0.5)
    assert rows["person"]["misses"] == "2"
    assert "# Tracks of model version tracks-v1" in done.stdout
    assert "| car | 1 | 1 | 2 | 10 | 10 | 0.900 | 0.500 | 0.707 |" in done.stdout
