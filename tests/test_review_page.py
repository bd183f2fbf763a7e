"""The review page: Debian's chromium driven by Playwright over the real server (keys A, D,
Backspace, S; reload), leases between reviewers, the token, the v1 migration, the CLI check."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from prelabel.labelstudio.server import free_port
from prelabel.records import ModelSignature
from prelabel.review.features import read_features, write_features
from prelabel.review.learning import HOLDOUT_SHARE
from prelabel.review.queue import ReviewQueue
from prelabel.review.server import create_app
from prelabel.review.sets import ReviewSet, items_from_references
from prelabel.settings import Settings
from tests.conftest import encode_image, run_prelabel
from tests.support.browser import chromium

# One feature per item, shuffled against the id order, so max-prob's order is not the row order.
_X = [0.0, 3.0, 2.0, 1.0, -2.0, -1.0]


def _set(tmp_path: Path) -> tuple[Path, Path]:
    """A set from a references file of generated images (80x60, one box each), and its features."""
    lines = []
    for i in range(len(_X)):
        pixels = np.random.default_rng(i).integers(0, 255, (60, 80, 3), dtype=np.uint8)
        (tmp_path / f"img{i}.png").write_bytes(encode_image(Image.fromarray(pixels), "PNG"))
        lines.append(f"img{i}.png,{10 + i},5,{50 + i},45,car")
    (tmp_path / "refs.csv").write_text("\n".join(lines) + "\n")
    items = items_from_references(tmp_path / "refs.csv", "object")
    with ReviewSet.create(tmp_path / "set.sqlite", items, {"source": "references"}) as review_set:
        vectors = {item.id: np.array([x], np.float32) for item, x in zip(review_set.items(), _X, strict=True)}
    write_features(tmp_path / "f.parquet", vectors, ModelSignature("test-1d"), 0.0)
    return tmp_path / "set.sqlite", tmp_path / "f.parquet"


def _seed_without_held_out(draws: int = 3, answers: int = 8) -> int:
    """A seed whose first draws never pick a held-out item (learning.next_items' draw), so every
    item shown is the strategy's and the order can be checked."""
    return next(
        seed
        for seed in range(1000)
        if all(
            random.Random(f"{seed}:car:{n}").random() >= HOLDOUT_SHARE
            for n in range(answers)
            for _ in range(draws)
        )
    )


def _expected_max_prob(db_path: Path, skipped: set[int]) -> int:
    """Max-prob's pick, computed here: P(yes) from a logistic regression on the training answers
    (0.5 for all until both classes, no detector scores here), highest first, ties by id."""
    from sklearn.linear_model import LogisticRegression

    with sqlite3.connect(db_path) as db:
        answers = dict(db.execute("SELECT item_id, answer FROM answers WHERE held_out = 0").fetchall())
        answered = {r[0] for r in db.execute("SELECT item_id FROM answers")}
    ids = list(range(1, len(_X) + 1))
    p = {i: 0.5 for i in ids}
    if len(set(answers.values())) == 2:
        model = LogisticRegression(C=1.0, max_iter=1000)
        train = sorted(answers)
        model.fit(np.array([[_X[i - 1]] for i in train]), [bool(answers[i]) for i in train])
        yes = list(model.classes_).index(True)
        p = {i: float(model.predict_proba([[_X[i - 1]]])[0, yes]) for i in ids}
    free = [i for i in ids if i not in answered and i not in skipped]
    return min(free, key=lambda i: (-p[i], i))


def _answers(db_path: Path) -> dict[int, int]:
    with sqlite3.connect(db_path) as db:
        return dict(db.execute("SELECT item_id, answer FROM answers").fetchall())


@pytest.fixture
def serve() -> Iterator[object]:
    """Start a review server on a free port (a thread), stopped at the end."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(queue: ReviewQueue, token: str | None = None) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(queue, Settings(), token), host="127.0.0.1",
                                               port=port, log_level="warning"))  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the review server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive()


def test_keyboard_review_in_chromium(tmp_path: Path, serve: object) -> None:
    db_path, features = _set(tmp_path)
    queue = ReviewQueue(db_path, read_features(features), "max-prob", seed=_seed_without_held_out())
    url = serve(queue)  # type: ignore[operator]
    shown: list[int] = []
    skipped: set[int] = set()
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url + "/")
        step = 0

        def wait() -> int:
            """Wait for the page to show the server's answer; the item shown."""
            nonlocal step
            page.wait_for_function(f"Number(document.body.dataset.step || 0) > {step}", timeout=15000)
            step = int(page.evaluate("document.body.dataset.step"))
            assert page.inner_text("#error") == ""
            item = int(page.evaluate("document.body.dataset.itemId"))
            assert "held out" not in page.inner_text("#how")
            shown.append(item)
            return item

        def press(key: str) -> int:
            page.keyboard.press(key)
            return wait()

        first = wait()
        assert first == _expected_max_prob(db_path, skipped) == 1  # cold start: ties, row order
        # The image is served by the page's server and the box drawn over it, to scale.
        page.wait_for_function("document.getElementById('img').naturalWidth === 80")
        assert page.inner_text("#label") == "car"
        box = page.eval_on_selector("#box", "b => [b.offsetLeft, b.offsetWidth, b.style.display]")
        scale = page.eval_on_selector("#img", "i => i.clientWidth / i.naturalWidth")
        assert box[2] == "block" and box[0] == pytest.approx(10 * scale, abs=1)
        assert box[1] == pytest.approx(40 * scale, abs=1)

        second = press("d")  # yes
        assert _answers(db_path) == {1: 1}
        assert second == _expected_max_prob(db_path, skipped)
        third = press("ArrowLeft")  # no: both classes, the model is fitted
        assert _answers(db_path) == {1: 1, second: 0}
        assert third == _expected_max_prob(db_path, skipped) == 5  # lowest x, not the row order
        assert "n/a" not in page.inner_text("#pyes")
        again = press("Backspace")  # undo the "no": that item is asked again
        assert again == second and _answers(db_path) == {1: 1}
        after_skip = press("s")
        skipped.add(second)
        assert _answers(db_path) == {1: 1}
        assert after_skip == _expected_max_prob(db_path, skipped) == 3  # cold again: row order
        fourth = press("a")  # no
        assert _answers(db_path) == {1: 1, 3: 0}
        assert fourth == _expected_max_prob(db_path, skipped) == 5

        page.reload()  # a reload shows the same item and keeps every answer
        step = 0
        assert wait() == fourth
        assert _answers(db_path) == {1: 1, 3: 0}
        assert "50.0%" in page.inner_text("#stats tbody")  # 1 yes of 2 answers
        fifth = press("ArrowRight")  # yes
        assert _answers(db_path) == {1: 1, 3: 0, fourth: 1}
        assert fifth == _expected_max_prob(db_path, skipped)
        stats = page.inner_text("#stats tbody")
        assert "car" in stats and "66.7%" in stats  # 2 yes of 3 answers
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT item_id, answer, reviewer FROM answers ORDER BY seq").fetchall()
    assert [r[:2] for r in rows] == [(1, 1), (3, 0), (fourth, 1)]
    assert len({r[2] for r in rows}) == 1 and rows[0][2]
    assert shown == [1, second, third, second, after_skip, fourth, fourth, fifth]


def test_reviewers_get_distinct_items_and_the_token_is_checked(tmp_path: Path, serve: object) -> None:
    db_path, features = _set(tmp_path)
    queue = ReviewQueue(db_path, read_features(features), "max-prob", seed=_seed_without_held_out())
    url = serve(queue, token="s3cret")  # type: ignore[operator]
    assert httpx.get(url + "/").status_code == 401
    assert httpx.get(url + "/?token=wrong").status_code == 401
    assert httpx.get(url + "/image/1").status_code == 401
    assert httpx.get(url + "/?token=s3cret").status_code == 200
    auth = {"Authorization": "Bearer s3cret"}
    firsts = [httpx.get(url + "/api/state", params={"reviewer": r}, headers=auth).json() for r in "abc"]
    ids = [state["item"]["id"] for state in firsts]
    assert len(set(ids)) == 3  # leased: each reviewer gets their own
    again = httpx.get(url + "/api/state", params={"reviewer": "a"}, headers=auth).json()
    assert again["item"]["id"] == ids[0]  # the same reviewer keeps theirs
    image = httpx.get(url + f"/image/{ids[1]}?token=s3cret")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    # Answering someone else's item is refused.
    wrong = httpx.post(url + "/api/answer", json={"reviewer": "a", "item_id": ids[1], "answer": True},
                       headers=auth)  # fmt: skip
    assert wrong.status_code == 409
    with sqlite3.connect(db_path) as db:
        leases = dict(db.execute("SELECT item_id, reviewer FROM leases").fetchall())
        # An expired lease frees its item for the others.
        db.execute("UPDATE leases SET expires_at = 0 WHERE reviewer = 'b'")
    assert leases == {ids[0]: "a", ids[1]: "b", ids[2]: "c"}
    d = httpx.get(url + "/api/state", params={"reviewer": "d"}, headers=auth).json()
    assert d["item"]["id"] == ids[1]


def test_a_version_1_set_is_migrated_and_keeps_its_answers(tmp_path: Path) -> None:
    db_path, _ = _set(tmp_path)
    with sqlite3.connect(db_path) as db:  # back to version 1
        db.executescript(
            "DROP TABLE leases; DROP TABLE skips; ALTER TABLE answers DROP COLUMN reviewer;"
            "ALTER TABLE answers DROP COLUMN seq; UPDATE meta SET value = '1' WHERE key = 'schema_version';"
            "INSERT INTO answers VALUES (2, 1, 0, 'entropy', '2026-01-01T00:00:00+00:00');"
        )
    with ReviewSet(db_path) as review_set:
        assert review_set.meta["schema_version"] == "2"
        assert {k: v.yes for k, v in review_set.answers().items()} == {2: True}
        review_set.record(3, False, held_out=False, strategy="entropy", reviewer="r")
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT item_id, seq FROM answers ORDER BY seq").fetchall() == [(2, 2), (3, 3)]


def test_serve_on_another_address_needs_a_token(tmp_path: Path) -> None:
    db_path, features = _set(tmp_path)
    done = run_prelabel("review", "serve", "--set", str(db_path), "--features", str(features),
                        "--host", "0.0.0.0", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "give --token" in done.stderr and "Traceback" not in done.stderr
