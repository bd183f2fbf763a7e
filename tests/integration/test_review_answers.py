"""Answers that stay answered: regions found again by what they are after a repost with new
ids, answers whose region is gone reported and kept, the reviewed prediction changed in place
(stable ids, nothing written when nothing changed), accepted regions marked, and accepted
regions made annotations without touching people's own (a real Label Studio)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.quality.pairs import load_pairs
from prelabel.quality.report import measure_quality
from prelabel.review.apply import APPLIED, NOT_FOUND, apply_answers, review_task
from prelabel.review.identity import GEOMETRY_TOLERANCE
from prelabel.review.sets import Answer, Previous, ReviewItem, ReviewSet, items_from_tasks
from tests.conftest import encode_image
from tests.support.cli import CliRun

W, H = 120, 80  # the images' size, pixels


def _rect(rid: str, x: float, label: str = "person", score: float = 0.8) -> dict[str, Any]:
    """A rectangle at ``x`` percent of the width, 20% wide, y 10..60%."""
    value = {"x": x, "y": 10, "width": 20, "height": 50, "rotation": 0, "rectanglelabels": [label]}
    return {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "score": score,
        "original_width": W,
        "original_height": H,
        "image_rotation": 0,
        "value": value,
    }


def _text(rid: str, x: float) -> dict[str, Any]:
    """The per-region transcription of rectangle ``rid``."""
    value = {"x": x, "y": 10, "width": 20, "height": 50, "rotation": 0, "text": ["hello"]}
    return {
        "id": rid,
        "type": "textarea",
        "from_name": "transcription",
        "to_name": "image",
        "original_width": W,
        "original_height": H,
        "image_rotation": 0,
        "value": value,
    }


def _box(x: float) -> tuple[float, float, float, float]:
    """The pixel box of ``_rect(_, x)``."""
    return (x * W / 100, 8.0, (x + 20) * W / 100, 48.0)


def _yes(item_id: int, yes: bool) -> Answer:
    return Answer(item_id, yes, False, "entropy")


def test_regions_are_found_by_label_and_box_not_by_id() -> None:
    items = [
        ReviewItem("a.png", "person", _box(5), 0.8, 1, 10, "det0", id=1),
        ReviewItem("a.png", "person", _box(40), 0.8, 1, 10, "det1", id=2),
        ReviewItem("a.png", "person", _box(75), 0.8, 1, 10, "det2", id=3),
        ReviewItem("a.png", "text", _box(40), 0.8, 1, 10, "det3", id=4),
    ]
    answers = {1: _yes(1, False), 2: _yes(2, True), 4: _yes(4, True)}
    first = {"result": [_rect("det0", 5), _text("det0", 5), _rect("det1", 40), _rect("det2", 75)]}
    review = review_task(first, items, answers)
    # "no" to det0 removes its rectangle and its text; "yes" to det1 marks it; det2 unanswered.
    assert review.result == [{**_rect("det1", 40), "meta": {"reviewed": True}}, _rect("det2", 75)]
    assert review.removed == 2 and review.accepted == {"det1"}
    assert review.status == {1: APPLIED, 2: APPLIED, 4: NOT_FOUND}  # no "text" box at 40: not found

    # A repost numbers the boxes the other way round: det0 now names the box that was det1's.
    again = review_task({"result": [_rect("det0", 40), _rect("det1", 5), _text("det1", 5)]}, items, answers)
    assert again.result == [{**_rect("det0", 40), "meta": {"reviewed": True}}]
    assert again.status == {1: APPLIED, 2: APPLIED, 4: NOT_FOUND}

    # Within the tolerance a box is the same box; beyond it, it is not, and says so.
    step = GEOMETRY_TOLERANCE * 100 / W  # the tolerance in percent of the width
    near = review_task({"result": [_rect("n", 40 + 0.75 * step)]}, items[1:2], answers)
    far = review_task({"result": [_rect("f", 40 + 1.25 * step)]}, items[1:2], answers)
    assert near.accepted == {"n"} and far.accepted == set() and far.status == {2: NOT_FOUND}

    # Two answered items, one box left: one region answers for one item only (the closer).
    twins = [ReviewItem("a.png", "person", _box(40), id=5), ReviewItem("a.png", "person", _box(40.5), id=6)]
    one = review_task({"result": [_rect("x", 40)]}, twins, {5: _yes(5, False), 6: _yes(6, True)})
    assert one.status == {5: APPLIED, 6: NOT_FOUND} and one.removed == 1

    # Whole-image items: a label's every region, with the text that shares their ids.
    whole = [ReviewItem("a.png", "person", id=7), ReviewItem("a.png", "text", id=8)]
    yes_no = review_task(
        first | {"result": [*first["result"], _rect("t", 20, "text")]},
        whole,
        {7: _yes(7, True), 8: _yes(8, False)},
    )
    assert yes_no.accepted == {"det0", "det1", "det2"} and yes_no.removed == 1
    assert all(r["meta"] == {"reviewed": True} for r in yes_no.result)
    assert len(yes_no.result) == 4  # three rectangles and det0's text
    # The original prediction is never changed in place.
    assert "meta" not in first["result"][0]


def test_results_without_ids_are_found_by_their_box() -> None:
    """Predictions of other tools may carry no region ids: an answer still finds its rectangle."""
    bare = [{k: v for k, v in _rect("_", x).items() if k != "id"} for x in (5, 40, 75)]
    items = [ReviewItem("a.png", "person", _box(x), 0.8, 1, 10, None, id=i) for i, x in enumerate((5, 40), 1)]
    review = review_task({"result": bare}, items, {1: _yes(1, False), 2: _yes(2, True)})
    assert review.status == {1: APPLIED, 2: APPLIED}
    assert review.removed == 1
    assert review.result == [{**bare[1], "meta": {"reviewed": True}}, bare[2]]
    # A whole-image "no" removes every region of its label, ids or not.
    whole = review_task({"result": bare}, [ReviewItem("a.png", "person", id=3)], {3: _yes(3, False)})
    assert whole.result == [] and whole.removed == 3


def _project(client: LabelStudioClient, project: Project, tmp_path: Path) -> list[int]:
    """Three uploaded images, each predicted (model version m1) with three persons, det0 with text."""
    paths = []
    for seed in range(3):
        pixels = np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)
        paths.append(tmp_path / f"street_{seed}.png")
        paths[-1].write_bytes(encode_image(Image.fromarray(pixels), "PNG"))
    tasks = client.upload_files(project.id, paths)
    client.import_predictions(
        project.id,
        [
            {
                "task": t,
                "model_version": "m1",
                "score": 0.7,
                "result": [_rect("det0", 5), _text("det0", 5), _rect("det1", 40), _rect("det2", 75)],
            }
            for t in tasks
        ],
    )
    return tasks


def _reviewed(client: LabelStudioClient, project: Project) -> dict[int, tuple[int, list[dict[str, Any]]]]:
    """Task -> (prediction id, results) of m1-reviewed; every task has one at most."""
    out = {}
    for task in client.iter_tasks(project.id, full=True):
        found = [p for p in task.predictions if p.get("model_version") == "m1-reviewed"]
        assert len(found) <= 1
        if found:
            out[task.id] = (int(found[0]["id"]), found[0]["result"])
    return out


def _annotations(client: LabelStudioClient, project: Project) -> dict[int, list[tuple[int, list[Any]]]]:
    return {
        t.id: [(int(a["id"]), a["result"]) for a in t.annotations]
        for t in client.iter_tasks(project.id, full=True)
    }


def _marked(results: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(type, id, marked accepted) of each result, in order."""
    return [(r["type"], r["id"], bool((r.get("meta") or {}).get("reviewed"))) for r in results]


def test_apply_in_place_marks_accepted_annotates_and_survives_a_repost(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    project: Project,
    tmp_path: Path,
    cli: CliRun,
) -> None:
    t1, t2, t3 = _project(ls_client, project, tmp_path)
    items, _ = items_from_tasks(ls_client.iter_tasks(project.id, full=True), "m1", "image", "box")
    meta = {"source": "project", "project_id": project.id, "model_version": "m1", "per": "box"}
    set_path = tmp_path / "people.sqlite"
    with ReviewSet.create(set_path, items, meta) as review_set:
        item = {(i.task_id, i.region_id): i.id for i in review_set.items()}
        assert len(item) == 9
        review_set.record(item[t1, "det0"], False, False, "entropy", "ana")
        review_set.record(item[t1, "det1"], True, False, "entropy", "ana")
        review_set.record(item[t2, "det0"], True, False, "entropy", "bo")
    human = ls_client.create_annotation(t3, [_rect("mine", 60)])["id"]  # a person's own annotation

    # 1. The first apply makes the reviewed predictions and the annotations of accepted regions.
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = cli("review", "apply", "--set", str(set_path), "--annotate", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3 created, 0 updated in place, 0 unchanged (3 tasks)" in done.stdout
    assert "2 rejected results removed, 2 accepted regions marked" in done.stdout
    assert "annotations of accepted regions: 2 created" in done.stdout
    first = _reviewed(ls_client, project)
    assert _marked(first[t1][1]) == [("rectanglelabels", "det1", True), ("rectanglelabels", "det2", False)]
    assert _marked(first[t2][1]) == [
        ("rectanglelabels", "det0", True),
        ("textarea", "det0", True),
        ("rectanglelabels", "det1", False),
        ("rectanglelabels", "det2", False),
    ]
    assert not any(marked for _, _, marked in _marked(first[t3][1])) and len(first[t3][1]) == 4
    notes = _annotations(ls_client, project)
    assert [_marked(r) for _, r in notes[t1]] == [[("rectanglelabels", "det1", True)]]
    assert [_marked(r) for _, r in notes[t2]] == [
        [("rectanglelabels", "det0", True), ("textarea", "det0", True)]
    ]
    assert [a for a, _ in notes[t3]] == [human]
    with (tmp_path / "people.answers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["reviewer"], r["status"]) for r in rows] == [
        ("ana", "applied"),
        ("ana", "applied"),
        ("bo", "applied"),
    ]

    # 2. A lead's correction and a new answer: the same predictions change in place.
    with ReviewSet(set_path) as review_set:
        review_set.record(item[t2, "det0"], False, False, "entropy", "lee", Previous("bo", True))
        review_set.record(item[t3, "det2"], True, False, "entropy", "ana")
        second = apply_answers(ls_client, review_set, tmp_path / "a.csv", annotate=True)
    assert (second.created, second.updated, second.unchanged) == (0, 2, 1)
    assert second.annotations == {"created": 1, "unchanged": 1, "deleted": 1}
    now = _reviewed(ls_client, project)
    assert {t: i for t, (i, _) in now.items()} == {t: i for t, (i, _) in first.items()}  # stable ids
    assert _marked(now[t2][1]) == [("rectanglelabels", "det1", False), ("rectanglelabels", "det2", False)]
    assert _marked(now[t3][1])[-1] == ("rectanglelabels", "det2", True)
    notes = _annotations(ls_client, project)
    assert notes[t2] == []  # nothing accepted there any more: prelabel's annotation is gone
    assert len(notes[t3]) == 2 and notes[t3][0][0] == human
    assert notes[t3][0][1][0]["id"] == "mine"  # the person's annotation as it was

    # The quality report of the reviewed version counts what people accepted: t1's det1 and t3's
    # det2 (t2 has no annotation any more, so it is not measured).
    config, pairs = load_pairs(ls_client, project.id, "m1-reviewed")
    measured = measure_quality(pairs, config.config, project.id)
    person = next(s for s in measured.summary.labels if s.label == "person")
    assert (
        person.reviewed == 2 and "2 predicted regions were accepted in review" in measured.summary.markdown()
    )
    assert sorted((r.task_id, r.region_id) for r in measured.regions if r.reviewed) == [
        (t1, "det1"),
        (t3, "det2"),
    ]

    # 3. Nothing new: nothing written, the dry run says the same.
    with ReviewSet(set_path) as review_set:
        third = apply_answers(ls_client, review_set, tmp_path / "a.csv", annotate=True)
        dry = apply_answers(ls_client, review_set, tmp_path / "a.csv", annotate=True, dry_run=True)
    assert (third.created, third.updated, third.unchanged) == (0, 0, 3)
    assert third.annotations == {"unchanged": 2} and dry.annotations == {"unchanged": 2}
    assert _reviewed(ls_client, project) == now

    # 4. A rerun with --overwrite reposts m1: new region ids, another order, one box moved.
    ls_client.delete_model_version(project.id, "m1")
    reposted = {t: [_rect("r2", 75), _rect("r1", 40), _rect("r0", 5), _text("r0", 5)] for t in (t2, t3)}
    reposted[t1] = [_rect("r2", 75), _rect("r1", 52), _rect("r0", 5), _text("r0", 5)]  # det1 moved
    ls_client.import_predictions(
        project.id,
        [{"task": t, "model_version": "m1", "score": 0.7, "result": r} for t, r in reposted.items()],
    )
    with ReviewSet(set_path) as review_set:
        fourth = apply_answers(ls_client, review_set, tmp_path / "a.csv")
        answers = review_set.answers()
    assert fourth.not_applied == {item[t1, "det1"]: NOT_FOUND}
    assert any(
        "1 answers not applied" in line and "kept for the next apply" in line for line in fourth.lines()
    )
    assert item[t1, "det1"] in answers  # kept in the set
    after = _reviewed(ls_client, project)
    assert {t: i for t, (i, _) in after.items()} == {t: i for t, (i, _) in first.items()}
    assert _marked(after[t1][1]) == [("rectanglelabels", "r2", False), ("rectanglelabels", "r1", False)]
    assert _marked(after[t2][1]) == [("rectanglelabels", "r2", False), ("rectanglelabels", "r1", False)]
    assert _marked(after[t3][1])[0] == ("rectanglelabels", "r2", True)  # det2's answer, found again
    with (tmp_path / "a.csv").open() as handle:
        status = {int(r["item_id"]): r["status"] for r in csv.DictReader(handle)}
    assert status == {
        item[t1, "det0"]: "applied",
        item[t1, "det1"]: "region not found",
        item[t2, "det0"]: "applied",
        item[t3, "det2"]: "applied",
    }
