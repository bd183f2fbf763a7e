"""The review queue for a team, without a browser: the held-out share with reviewers at once,
review by detector score without features, what is left and who holds it, reviewer names and
files, set migrations, and ``review serve``'s checks before it starts."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from prelabel.core.errors import PrelabelError
from prelabel.labelstudio.server import free_port
from prelabel.review.learning import HOLDOUT_SHARE, next_items
from prelabel.review.queue import ReviewQueue, StaleItemError
from prelabel.review.sets import ReviewItem, ReviewSet
from prelabel.review.team import Team, check_name, read_reviewers
from tests.support import REPO

ROOT = REPO


def _set(path: Path, scores: list[float | None], meta: dict[str, object] | None = None) -> Path:
    items = [
        ReviewItem(f"/data/upload/1/{i}.jpg" if meta else f"{i}.jpg", "car", (0, 0, 5, 5), s, i + 1)
        for i, s in enumerate(scores)
    ]
    ReviewSet.create(path, items, meta or {"source": "references"}).close()
    return path


def test_the_held_out_share_holds_when_others_hold_the_top_items(tmp_path: Path) -> None:
    # Seven reviewers hold the seven items the strategy ranks first (the highest scores). A draw
    # per position the strategy would have filled makes about 1 - 0.9^8 = 57% of the next
    # questions held out; one draw per question, over the free items, makes 10%.
    scores = [1 - i / 100 for i in range(40)]
    path = _set(tmp_path / "s.sqlite", scores)
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO leases VALUES (?, ?, 1e12, 0, 0.5, 1)", [(i, f"r{i}") for i in range(1, 8)]
        )
    queue = ReviewQueue(path, None, "max-prob")
    held = []
    for n in range(300):
        shown = queue.current(f"new{n}")  # each name draws its own questions
        assert shown is not None and shown.item.id > 7
        held.append(shown.held_out)
        if not shown.held_out:
            assert shown.item.id == 8  # the strategy's best free item
        queue.skip(f"new{n}", shown.item.id)  # frees the lease: the others' leases stay the only ones
    share = sum(held) / len(held)
    assert abs(share - HOLDOUT_SHARE) < 0.05, share


def test_without_features_the_detector_score_orders_the_items(tmp_path: Path) -> None:
    scores = [0.25, 0.95, 0.52, None, 0.1, 0.7]
    path = _set(tmp_path / "s.sqlite", scores)
    with ReviewSet(path) as review_set:
        ranked = next_items(review_set, None, "car", "max-prob", count=6, seed=3)
        by_entropy = next_items(review_set, None, "car", "entropy", count=6, seed=3)
    assert all(s.cold_start for s in ranked)
    strategy_picks = [s.item.score for s in ranked if not s.held_out]
    assert strategy_picks == sorted(strategy_picks, key=lambda v: -(0.5 if v is None else v))
    assert len(strategy_picks) >= 4
    nearest = [s.item.score for s in by_entropy if not s.held_out]
    assert nearest == sorted(nearest, key=lambda v: abs((0.5 if v is None else v) - 0.5))
    queue = ReviewQueue(path, None, "max-prob")
    seen = []
    while (shown := queue.current("dan")) is not None:
        seen.append(shown)
        assert shown.p_yes == (0.5 if shown.item.score is None else shown.item.score)
        queue.answer("dan", shown.item.id, True)
    assert sorted(s.item.id for s in seen) == [1, 2, 3, 4, 5, 6]
    assert queue.stats()[0].answered == 6 and queue.stats()[0].items == 6


def test_progress_tells_nothing_left_from_held_by_others_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="prelabel.review")
    queue = ReviewQueue(_set(tmp_path / "s.sqlite", [0.9, 0.8, 0.7]), None, "max-prob")
    first = queue.current("ann")
    assert first is not None
    second = queue.current("ben")
    assert second is not None and second.item.id != first.item.id
    third = queue.current("cat")
    assert third is not None
    queue.skip("cat", third.item.id)
    assert queue.current("cat") is None  # the rest is held by ann and ben, the third skipped
    progress = queue.progress("cat")
    assert (progress.items, progress.answered, progress.held_by_others, progress.skipped) == (3, 0, 2, 1)
    queue.answer("ann", first.item.id, True)
    with pytest.raises(StaleItemError, match="no longer yours"):
        queue.answer("ann", first.item.id, False)  # a second tab's key on the answered item
    with pytest.raises(StaleItemError, match="no answer of yours"):
        queue.undo("ben", first.item.id)  # ann's answer is not ben's to undo
    queue.answer("ben", second.item.id, False)
    done = queue.progress("ben")
    assert (done.answered, done.held_by_others, done.skipped) == (2, 0, 0)
    assert queue.current("ann") is not None  # the item cat skipped is still ann's to answer
    assert queue.progress("cat").held_by_others == 1
    queue.correct("lee", first.item.id, False)
    with ReviewSet(queue.path) as review_set:
        corrected = review_set.answers()[first.item.id]
    assert (corrected.yes, corrected.reviewer, corrected.previous and corrected.previous.reviewer) == (
        False,
        "lee",
        "ann",
    )
    assert [r.item.id for r in queue.recent("ben")] == [first.item.id]  # ben's own left out
    # One line per answer and correction, none for the refused ones.
    assert [r.getMessage() for r in caplog.records] == [
        f"ann answered item {first.item.id} (car, {first.item.id - 1}.jpg, task {first.item.id}): yes",
        f"ben answered item {second.item.id} (car, {second.item.id - 1}.jpg, task {second.item.id}): no",
        f"lee corrected item {first.item.id} (car, {first.item.id - 1}.jpg, task {first.item.id}): no "
        "(was ann: yes)",
    ]


def test_reviewer_names_and_reviewers_files(tmp_path: Path) -> None:
    assert check_name("  Ana María ") == "Ana María" and check_name("o'neil-2") == "o'neil-2"
    for bad in ["", " ", "x" * 41, "<script>", "_x", "a/b"]:
        with pytest.raises(PrelabelError, match="reviewer name"):
            check_name(bad)
    good = tmp_path / "team.csv"
    good.write_text("# name,token,role\nana,ana-secret-1\nbo,bo-secret-22,lead\n\n")
    team = read_reviewers(good, ["ana"])
    assert team.identify("bo-secret-22") == (True, "bo") and team.identify("nope-nope") == (False, None)
    assert team.leads == {"ana", "bo"} and "secret" not in repr(team)
    assert Team(token="shared-1").identify("shared-1") == (True, None) and Team().identify("") == (True, None)
    mistakes = [
        ("ana\n", "expected name,token"),
        ("ana,short\n", "shorter than 8"),
        ("ana,same-token-1\nbo,same-token-1\n", "also ana's"),
        ("ana,token-one-1\nana,token-two-2\n", "named twice"),
        ("ana,token-one-1,boss\n", "expected name,token"),
        ("# none\n", "names no"),
        ("<b>,token-one-1\n", "reviewer name"),
    ]
    with pytest.raises(PrelabelError, match="--lead cy: not a reviewer in"):
        read_reviewers(good, ["cy"])
    for text, message in mistakes:
        good.write_text(text)
        with pytest.raises(PrelabelError, match=message):
            read_reviewers(good)
    with pytest.raises(PrelabelError, match="cannot read reviewers file"):
        read_reviewers(tmp_path / "missing.csv")


@pytest.mark.parametrize("version", ["1", "2"])
def test_older_sets_are_migrated_and_keep_their_answers(tmp_path: Path, version: str) -> None:
    path = _set(tmp_path / "s.sqlite", [0.5, 0.6, 0.7])
    back = (
        "ALTER TABLE answers DROP COLUMN previous_reviewer; ALTER TABLE answers DROP COLUMN previous_answer;"
    )
    back += "DROP TABLE annotations;"
    if version == "1":
        back += "DROP TABLE leases; DROP TABLE skips; ALTER TABLE answers DROP COLUMN reviewer;"
        back += "ALTER TABLE answers DROP COLUMN seq;"
    with sqlite3.connect(path) as db:
        db.executescript(back + f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version';")
        db.execute(
            "INSERT INTO answers (item_id, answer, held_out, strategy, answered_at) "
            "VALUES (2, 1, 0, 'entropy', '2026-01-01T00:00:00+00:00')"
        )
    with ReviewSet(path) as review_set:
        assert review_set.meta["schema_version"] == "3"
        assert {k: v.yes for k, v in review_set.answers().items()} == {2: True}
        review_set.record(3, False, held_out=False, strategy="entropy", reviewer="r")
        review_set.remember_annotation(9, 44)
        assert review_set.annotations() == {9: 44}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT item_id, reviewer FROM answers ORDER BY seq").fetchall() == [
            (2, None),
            (3, "r"),
        ]


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``prelabel review serve`` in a subprocess that must stop by itself (a check failed)."""
    full = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PRELABEL_LS_API_KEY": "",
        "LABEL_STUDIO_API_KEY": "",
        "PRELABEL_REVIEW_TOKEN": "",
        **(env or {}),
    }
    code = "from prelabel_cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "review", "serve", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        check=False,
    )


def test_serve_checks_before_it_starts(tmp_path: Path) -> None:
    project_set = _set(
        tmp_path / "p.sqlite", [0.5], {"source": "project", "project_id": 3, "model_version": "m"}
    )
    local_set = _set(tmp_path / "r.sqlite", [0.5])
    cases = [
        # A set made from a project, no key: every image would fail.
        ((str(project_set),), {}, "no Label Studio API key"),
        # The key, but nothing answers at the URL.
        (
            (str(project_set),),
            {"PRELABEL_LS_API_KEY": "k" * 40, "PRELABEL_LS_URL": f"http://127.0.0.1:{free_port()}"},
            "did not answer",
        ),
        # Another address without a token.
        ((str(local_set), "--host", "0.0.0.0"), {}, "give --token or --reviewers"),
        # Not a set.
        ((str(tmp_path / "none.sqlite"),), {}, "no review set"),
        # A reviewers file with a mistake.
        ((str(local_set), "--reviewers", str(tmp_path / "none.csv")), {}, "cannot read reviewers file"),
        # Both ways in at once: which one holds is not guessed.
        (
            (str(local_set), "--reviewers", str(tmp_path / "none.csv")),
            {"PRELABEL_REVIEW_TOKEN": "t" * 12},
            "not both",
        ),
    ]
    for args, env, message in cases:
        done = _serve("--set", *args, env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
        assert "review page" not in done.stdout and "Traceback" not in done.stderr
    with socket.socket() as busy:  # the port is someone else's: one line, no URL
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _serve("--set", str(local_set), "--port", str(port))
    assert done.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1


def test_serve_starts_without_features_and_logs_each_answer(tmp_path: Path) -> None:
    path = _set(tmp_path / "r.sqlite", [0.2, 0.9, 0.5])
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "PRELABEL_REVIEW_TOKEN": "team-token-1",
    }
    code = "from prelabel_cli.main import main; main()"
    args = ["review", "serve", "--set", str(path), "--port", "0", "--strategy", "max-prob", "--lead", "ann"]
    pipe = subprocess.PIPE
    server = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=pipe, stderr=pipe, text=True, env=env
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("review page: http://127.0.0.1:") and line.rstrip().endswith("/?token=...")
        assert "team-token-1" not in line
        url = line.split()[2].removesuffix("?token=...")
        auth = {"Authorization": "Bearer team-token-1"}
        state = httpx.get(url + "api/state", params={"reviewer": "ann"}, headers=auth, timeout=30).json()
        assert state["features"] is False and state["item"]["score"] == 0.9  # the detector's best first
        shown = state["item"]["id"]
        answered = httpx.post(
            url + "api/answer",
            json={"reviewer": "ann", "item_id": shown, "answer": True},
            headers=auth,
            timeout=30,
        )
        assert answered.status_code == 200 and answered.json()["progress"]["answered"] == 1
        assert httpx.get(url + "api/state", params={"reviewer": "ann"}, timeout=30).status_code == 401
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    assert f"ann answered item {shown} (car, {shown - 1}.jpg, task {shown}): yes" in errors
    assert "names are taken on trust without a token per reviewer" in errors  # --lead, a shared token
    assert "team-token-1" not in errors
