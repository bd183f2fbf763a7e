"""The review page in Debian's chromium, driven by Playwright over the real server: keys A, D,
Backspace, S and R, reloads, forty answers with every image on screen, a failed image, a team
(names from tokens, a lead's correction, a stale tab, the rest held by others), a wrong token
and a server that is gone. With PRELABEL_SCREENSHOTS=<folder> the tests save the guide's
screenshots there (docs/img), so the pictures stay true."""

from __future__ import annotations

import csv
import io
import random
import sqlite3
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from prelabel.records import ModelSignature
from prelabel.review.apply import write_answers
from prelabel.review.features import read_features, write_features
from prelabel.review.learning import HOLDOUT_SHARE
from prelabel.review.queue import ReviewQueue
from prelabel.review.sets import Previous, ReviewItem, ReviewSet, items_from_references
from prelabel.review.team import Team
from tests.conftest import encode_image
from tests.support.browser import chromium
from tests.support.docs_images import docs_image
from tests.support.review_server import review_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

# One feature per item, shuffled against the id order, so max-prob's order is not the row order.
_X = [0.0, 3.0, 2.0, 1.0, -2.0, -1.0]
TOKENS = {"alice-token-1": "alice", "bob-token-22": "bob", "carol-token-333": "carol"}


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


def _colour(n: int) -> tuple[int, int, int]:
    """Item n's colour: distinct for every n < 64, far from the page's dark background."""
    return 60 + 3 * n, 240 - 2 * n, 90 + (37 * n) % 160


def _coloured_set(tmp_path: Path, count: int, missing: frozenset[int] = frozenset()) -> Path:
    """``count`` items, each a flat image of its own colour and size with a box in its right half,
    from Label Studio tasks (task id 100 + n) of project 7; images in ``missing`` are not written."""
    items = []
    for n in range(count):
        width, height = 64 + 8 * n, 48 + 5 * n
        path = tmp_path / f"shot_{n:02d}.png"
        box = (width * 0.6, height * 0.3, width * 0.9, height * 0.8)
        if n not in missing:
            image = Image.new("RGB", (width, height), _colour(n))
            ImageDraw.Draw(image).ellipse(
                (width * 0.64, height * 0.4, width * 0.86, height * 0.72), (40, 40, 60)
            )
            path.write_bytes(encode_image(image, "PNG"))
        items.append(
            ReviewItem(str(path), "car", box, round(0.99 - n / 100, 2), 100 + n, 1000 + n, f"det{n}")
        )
    meta = {"source": "project", "project_id": 7, "model_version": "m1", "ls_url": "http://127.0.0.1:9"}
    ReviewSet.create(tmp_path / "team.sqlite", items, meta).close()
    return tmp_path / "team.sqlite"


def _seed_without_held_out(reviewer: str, draws: int = 3, answers: int = 8) -> int:
    """A seed whose first draws for ``reviewer`` never pick a held-out item (learning.next_items'
    draw), so every item shown is the strategy's and the order can be checked."""
    return next(
        seed
        for seed in range(1000)
        if all(
            random.Random(f"{seed}:car:{n}:{reviewer}").random() >= HOLDOUT_SHARE
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


def _screenshot(page: Page, name: str) -> None:
    """Save a screenshot for the guide when PRELABEL_SCREENSHOTS names a folder."""
    target = docs_image(name)
    if target is not None:
        page.screenshot(path=str(target))


class Tab:
    """One browser tab on the page, and the step counter the page sets after each server answer."""

    def __init__(self, page: Page, url: str) -> None:
        self.page, self.step = page, 0
        page.goto(url)

    def wait(self) -> int:
        """Wait for the page to show the server's next answer; the item shown (0: none)."""
        self.page.wait_for_function(f"Number(document.body.dataset.step || 0) > {self.step}", timeout=15000)
        self.step = int(self.page.evaluate("document.body.dataset.step"))
        return int(self.page.evaluate("document.body.dataset.itemId") or 0)

    def ready(self) -> int:
        """Wait until the current item's image has loaded; the item."""
        self.page.wait_for_function(
            "document.body.dataset.itemId && "
            "document.body.dataset.imageReady === document.body.dataset.itemId",
            timeout=15000,
        )
        return int(self.page.evaluate("document.body.dataset.itemId"))

    def press(self, key: str) -> int:
        self.page.keyboard.press(key)
        return self.wait()

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)


def test_keyboard_review_in_chromium(tmp_path: Path) -> None:
    db_path, features = _set(tmp_path)
    queue = ReviewQueue(db_path, read_features(features), "max-prob", seed=_seed_without_held_out("dana"))
    shown: list[int] = []
    skipped: set[int] = set()
    with review_server(queue) as url, chromium() as browser:
        page = browser.new_page()
        tab = Tab(page, url + "/")
        page.wait_for_selector("#name")
        _screenshot(page, "review-name.png")
        page.fill("#name", "<dana>")  # not a name: asked again, with what a name may hold
        page.press("#name", "Enter")
        page.wait_for_function("document.getElementById('askerror').textContent.includes('reviewer name')")
        assert page.is_visible("#name")
        page.fill("#name", "dana")  # asked once
        page.press("#name", "Enter")

        def wait() -> int:
            item = tab.wait()
            assert tab.text("#error") == ""
            assert "held out" not in tab.text("#how")
            shown.append(item)
            return item

        def press(key: str) -> int:
            page.keyboard.press(key)
            return wait()

        first = wait()
        assert first == _expected_max_prob(db_path, skipped) == 1  # cold start: ties, row order
        # The image is served by the page's server, scaled to the window, the box drawn over it.
        tab.ready()
        assert tab.text("#label") == "car" and tab.text("#file") == "img0.png"
        box = page.eval_on_selector("#box", "b => [b.offsetLeft, b.offsetWidth, b.style.display]")
        scale = page.eval_on_selector("#img", "i => i.clientWidth / i.naturalWidth")
        assert scale > 5  # an 80x60 image fills the window, not 80x60 pixels of it
        assert box[2] == "block" and box[0] == pytest.approx(10 * scale, abs=1)
        assert box[1] == pytest.approx(40 * scale, abs=1)
        assert page.eval_on_selector("#zoom", "z => z.style.display") == "block"

        second = press("d")  # yes
        assert _answers(db_path) == {1: 1}
        assert second == _expected_max_prob(db_path, skipped)
        tab.ready()
        third = press("ArrowLeft")  # no: both classes, the model is fitted
        assert _answers(db_path) == {1: 1, second: 0}
        assert third == _expected_max_prob(db_path, skipped) == 5  # lowest x, not the row order
        assert "n/a" not in tab.text("#pyes")
        again = press("Backspace")  # undo this tab's last answer, the "no": that item is asked again
        assert again == second and _answers(db_path) == {1: 1}
        after_skip = press("s")
        skipped.add(second)
        assert _answers(db_path) == {1: 1}
        assert after_skip == _expected_max_prob(db_path, skipped) == 3  # cold again: row order
        tab.ready()
        fourth = press("a")  # no
        assert _answers(db_path) == {1: 1, 3: 0}
        assert fourth == _expected_max_prob(db_path, skipped) == 5

        page.reload()  # a reload keeps the name (no question), the same item and every answer
        tab.step = 0
        assert wait() == fourth
        assert page.eval_on_selector("#ask", "a => getComputedStyle(a).display") == "none"
        assert _answers(db_path) == {1: 1, 3: 0}
        assert "50.0%" in tab.text("#stats tbody")  # 1 yes of 2 answers
        tab.ready()
        fifth = press("ArrowRight")  # yes
        assert _answers(db_path) == {1: 1, 3: 0, fourth: 1}
        assert fifth == _expected_max_prob(db_path, skipped)
        stats = tab.text("#stats tbody")
        assert "car" in stats and "66.7%" in stats  # 2 yes of 3 answers
        assert "answered 3 of 6" in tab.text("#progress")
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT item_id, answer, reviewer FROM answers ORDER BY seq").fetchall()
    assert rows == [(1, 1, "dana"), (3, 0, "dana"), (fourth, 1, "dana")]
    assert shown == [1, second, third, second, after_skip, fourth, fourth, fifth]


def test_forty_answers_each_with_its_image_on_screen(tmp_path: Path) -> None:
    db_path = _coloured_set(tmp_path, 40)
    queue = ReviewQueue(db_path, None, "max-prob")  # no features: by detector score
    seconds = []
    with review_server(queue) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        tab = Tab(page, url + "/")
        page.fill("#name", "erin")
        page.press("#name", "Enter")
        tab.wait()
        for n in range(40):
            item = tab.ready()
            # What is on screen is this item's image: its own colour, away from the box.
            shot = Image.open(io.BytesIO(page.locator("#img").screenshot())).convert("RGB")
            assert shot.width > 400  # scaled up to the window
            pixel = shot.getpixel((shot.width // 4, shot.height // 2))
            assert max(abs(a - b) for a, b in zip(pixel, _colour(item - 1), strict=True)) <= 3, (n, item)
            assert tab.text("#file") == f"shot_{item - 1:02d}.png"
            link = page.get_attribute("#task", "href")
            assert link == f"http://127.0.0.1:9/projects/7/data?task={99 + item}"
            if n == 0:
                _screenshot(page, "review-page.png")
            started = time.monotonic()
            tab.press("d" if n % 4 else "a")
            seconds.append(time.monotonic() - started)
        assert tab.text("#done") == "Nothing left to review in this set: every item is answered."
        _screenshot(page, "review-done.png")
    answers = _answers(db_path)
    assert len(answers) == 40 and sum(answers.values()) == 30
    print(f"40 answers: median {statistics.median(seconds):.3f} s, worst {max(seconds):.3f} s per answer")
    assert statistics.median(seconds) < 1.0


def test_a_failed_image_blocks_answers_until_it_loads(tmp_path: Path) -> None:
    db_path = _coloured_set(tmp_path, 2, missing=frozenset({0}))
    queue = ReviewQueue(db_path, None, "max-prob")
    with review_server(queue) as url, chromium() as browser:
        page = browser.new_page()
        tab = Tab(page, url + "/")
        page.fill("#name", "erin")
        page.press("#name", "Enter")
        assert tab.wait() == 1  # the highest score, whose file is missing
        page.wait_for_function("document.body.dataset.imageFailed === '1'")
        message = tab.text("#imagemsg")
        assert "did not load" in message and "shot_00.png" in message and "Press R" in message
        _screenshot(page, "review-image-failed.png")
        page.keyboard.press("d")  # refused on the page: nothing reaches the set
        page.wait_for_function("document.getElementById('notice').textContent.includes('not loaded')")
        assert _answers(db_path) == {} and page.evaluate("document.body.dataset.itemId") == "1"
        (tmp_path / "shot_00.png").write_bytes(encode_image(Image.new("RGB", (64, 48), _colour(0)), "PNG"))
        page.keyboard.press("r")  # retry: now it loads, and the answer counts
        assert tab.ready() == 1
        assert tab.press("d") == 2 and _answers(db_path) == {1: 1}


def test_a_team_names_a_lead_corrects_a_stale_tab_reloads(tmp_path: Path) -> None:
    db_path = _coloured_set(tmp_path, 4)
    queue = ReviewQueue(db_path, None, "max-prob")
    team = Team(tokens=TOKENS, leads=frozenset({"carol"}))
    with chromium() as browser:
        with review_server(queue, team=team) as url:
            context = browser.new_context()
            alice = Tab(context.new_page(), url + "/?token=alice-token-1")
            bob = Tab(browser.new_page(), url + "/?token=bob-token-22")
            a1, b1 = alice.wait(), bob.wait()
            assert a1 != b1  # leased: each their own
            assert "reviewer: alice" in alice.text("#who") and "reviewer: bob" in bob.text("#who")
            alice.ready()
            bob.ready()
            a2 = alice.press("d")
            bob.press("a")
            # A second tab of alice's shows her current item.
            stale = Tab(context.new_page(), url + "/?token=alice-token-1")
            assert stale.wait() == a2
            stale.ready()
            alice.ready()
            assert alice.press("d") == 0  # answered in the first tab: the second is stale now
            assert "being reviewed by others" in alice.text("#done")  # bob holds the last item
            assert stale.press("a") == 0  # refused, and the stale tab shows her state now
            assert "no longer yours" in stale.text("#notice")
            assert _answers(db_path) == {a1: 1, b1: 0, a2: 1}
            stale.page.keyboard.press("Backspace")  # this tab answered nothing: nothing undone
            stale.page.wait_for_function("document.getElementById('notice').textContent.includes('Nothing')")
            assert _answers(db_path) == {a1: 1, b1: 0, a2: 1}
            alice.page.route("**/api/undo*", lambda route: route.abort())  # the network fails once
            alice.page.keyboard.press("Backspace")
            alice.page.wait_for_function("document.getElementById('error').textContent.includes('answer')")
            alice.page.unroute("**/api/undo*")
            assert _answers(db_path) == {a1: 1, b1: 0, a2: 1}
            alice.page.keyboard.press("Backspace")  # the same answer is still the tab's to undo
            alice.page.wait_for_function(f"document.body.dataset.itemId === '{a2}'")
            alice.step = int(alice.page.evaluate("document.body.dataset.step"))
            assert _answers(db_path) == {a1: 1, b1: 0}

            # The lead: nothing free (alice and bob hold the rest), and the others' answers to correct.
            carol = Tab(browser.new_page(), url + "/?token=carol-token-333")
            assert carol.wait() == 0
            assert "being reviewed by others" in carol.text("#done") and "(2 items)" in carol.text("#done")
            assert "reviewer: carol (lead)" in carol.text("#who")
            _screenshot(carol.page, "review-lead.png")
            carol.page.click(f"#lead button[data-item='{a1}']")  # alice's yes becomes a no
            carol.wait()
            alice.press("Backspace")  # her answer was corrected: refused, and the tab forgets it
            assert "no answer of yours" in alice.text("#notice")
            alice.page.keyboard.press("Backspace")
            alice.page.wait_for_function("document.getElementById('notice').textContent.includes('Nothing')")
            refused = httpx.post(
                f"{url}/api/correct", params={"token": "bob-token-22"}, json={"item_id": b1, "answer": True}
            )
            assert refused.status_code == 403 and "not a lead" in refused.json()["detail"]
            # Under another name than the token's: the token decides who answers.
            httpx.post(
                f"{url}/api/answer",
                params={"token": "bob-token-22"},
                json={"reviewer": "alice", "item_id": a2, "answer": True},
            )
        # The server is gone: the page says so, and keeps what it had.
        bob.ready()
        bob.page.keyboard.press("d")
        bob.page.wait_for_function("document.getElementById('error').textContent.includes('does not answer')")
        wrong = Tab(browser.new_page(), "about:blank")
        with review_server(queue, team=team) as url:
            wrong.page.goto(url + "/?token=wrong")
            wrong.page.wait_for_function("document.getElementById('error').textContent.includes('refused')")
    with ReviewSet(db_path) as review_set:
        answers = review_set.answers()
        out = tmp_path / "answers.csv"
        assert write_answers(out, review_set.items(), answers) == 2
    assert (answers[a1].yes, answers[a1].reviewer, answers[a1].previous) == (
        False,
        "carol",
        Previous("alice", True),
    )
    assert (answers[b1].yes, answers[b1].reviewer, answers[b1].previous) == (False, "bob", None)
    assert a2 not in answers  # bob's token could not answer alice's leased item under her name
    with out.open() as handle:
        rows = {int(r["item_id"]): r for r in csv.DictReader(handle)}
    assert (rows[a1]["reviewer"], rows[a1]["previous_reviewer"], rows[a1]["previous_answer"]) == (
        "carol",
        "alice",
        "yes",
    )
    assert rows[b1]["reviewer"] == "bob" and rows[b1]["previous_reviewer"] == ""
    assert rows[a1]["answered_at"].startswith(time.strftime("%Y-"))
