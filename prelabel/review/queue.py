"""The review page's queue: which item a reviewer sees, leases, skips, answers, undo, corrections.

Everything lives in the set's SQLite file (``leases``, ``skips``, ``answers``; see
``prelabel.review.sets``) and is written when it happens, so a closed tab or a crashed
server loses nothing and a reload shows the same item. An item shown is leased to its
reviewer (by name) for ``LEASE_SECONDS``: the others get the strategy's next free item
instead. Labels are reviewed in turn: the label with the fewest answers first, then the
strategy within it. A page acts on the item it shows; when that item is no longer its to act
on (answered in another tab, the lease expired, a lead corrected it) the queue raises
``StaleItemError`` and the page shows the reviewer's current item instead. Every answer,
undo and correction is one log line (``prelabel.review``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prelabel.core.errors import PrelabelError
from prelabel.labelstudio.matching import task_file_name
from prelabel.review.learning import Features, Strategy, Target, held_out_accuracy, next_items
from prelabel.review.sets import Answer, Previous, ReviewItem, ReviewSet

__all__ = ["LEASE_SECONDS", "LabelStats", "Progress", "ReviewQueue", "Shown", "StaleItemError"]

LEASE_SECONDS = 600.0

log = logging.getLogger("prelabel.review")


class StaleItemError(PrelabelError):
    """The page acted on an item that is no longer its to act on."""


@dataclass(frozen=True, slots=True)
class Shown:
    """The item a reviewer is asked about, and how it was chosen."""

    item: ReviewItem
    p_yes: float
    held_out: bool
    cold_start: bool


@dataclass(frozen=True, slots=True)
class LabelStats:
    """Progress on one label: answers, positives, and the held-out accuracy (None without any)."""

    label: str
    items: int
    answered: int
    yes: int
    held_out_accuracy: float | None
    held_out: int

    @property
    def positives_rate(self) -> float | None:
        return self.yes / self.answered if self.answered else None


@dataclass(frozen=True, slots=True)
class Progress:
    """The whole set as one reviewer sees it: items under review, answered, leased to others
    now, and skipped by this reviewer (not answered by anyone yet)."""

    items: int
    answered: int
    held_by_others: int
    skipped: int


@dataclass(frozen=True, slots=True)
class Recent:
    """An answer as a lead sees it, to correct."""

    item: ReviewItem
    answer: Answer


class ReviewQueue:
    """One set under review by any number of reviewers, each known by name.

    ``features`` None: no classifier; P(yes) is the detector's score and the strategy orders by it.
    """

    def __init__(
        self,
        path: str | Path,
        features: Features | None,
        strategy: Strategy = "entropy",
        target: Target = "yes",
        seed: int = 0,
        label: str | None = None,
    ) -> None:
        self.path, self.features, self.seed = Path(path), features, seed
        self.strategy, self.target = strategy, target
        self._lock = threading.Lock()  # choosing and leasing is one step across reviewers
        with self._set() as review_set:  # migrates an older set once, up front
            labels = review_set.labels()
            self.meta = review_set.meta
            if features is not None and not any(item.id in features for item in review_set.items()):
                raise PrelabelError(f"no item of {self.path} has features: wrong --features file?")
        if label is not None and label not in labels:
            raise PrelabelError(f"--label {label!r}: the set has {', '.join(labels) or 'no labels'}")
        self.labels = [label] if label is not None else labels

    @contextlib.contextmanager
    def _set(self) -> Iterator[ReviewSet]:
        with ReviewSet(self.path) as review_set:
            yield review_set

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def current(self, reviewer: str) -> Shown | None:
        """The reviewer's leased item (renewed), else the next one, leased; None when none is free."""
        with self._lock:
            now = time.time()
            with self._db() as db:
                db.execute(
                    "DELETE FROM leases WHERE expires_at < ? OR item_id IN (SELECT item_id FROM answers)",
                    (now,),
                )
                row = db.execute(
                    "SELECT item_id, held_out, p_yes, cold_start FROM leases WHERE reviewer = ? "
                    "ORDER BY expires_at DESC LIMIT 1",
                    (reviewer,),
                ).fetchone()
                if row is not None:
                    db.execute(
                        "UPDATE leases SET expires_at = ? WHERE item_id = ?", (now + LEASE_SECONDS, row[0])
                    )
                    return Shown(self.item(int(row[0])), float(row[2]), bool(row[1]), bool(row[3]))
                blocked = {int(r[0]) for r in db.execute("SELECT item_id FROM leases")}
                blocked |= {
                    int(r[0]) for r in db.execute("SELECT item_id FROM skips WHERE reviewer = ?", (reviewer,))
                }
            shown = self._choose(blocked, reviewer)
            if shown is not None:
                with self._db() as db:
                    db.execute(
                        "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            shown.item.id,
                            reviewer,
                            now + LEASE_SECONDS,
                            int(shown.held_out),
                            shown.p_yes,
                            int(shown.cold_start),
                        ),
                    )
            return shown

    def answer(self, reviewer: str, item_id: int, yes: bool) -> None:
        """Record the answer to the reviewer's leased item (written before this returns)."""
        with self._lock:
            with self._db() as db:
                row = db.execute(
                    "SELECT held_out FROM leases WHERE item_id = ? AND reviewer = ?", (item_id, reviewer)
                ).fetchone()
            if row is None:
                raise StaleItemError(
                    f"item {item_id} is no longer yours to answer (answered in another tab, or its "
                    "lease expired)"
                )
            strategy = "random" if row[0] else self.strategy
            with self._set() as review_set:
                review_set.record(item_id, yes, bool(row[0]), strategy, reviewer)
            with self._db() as db:
                db.execute("DELETE FROM leases WHERE item_id = ?", (item_id,))
        self._log("answered", reviewer, item_id, yes, " (held out)" if row[0] else "")

    def undo(self, reviewer: str, item_id: int) -> None:
        """Forget the reviewer's answer to ``item_id`` and lease the item back to them.

        Only the reviewer's own answer is undone: one a lead has corrected since, or one undone
        in another tab, raises ``StaleItemError``.
        """
        with self._lock, self._db() as db:
            row = db.execute(
                "SELECT held_out FROM answers WHERE item_id = ? AND reviewer = ?", (item_id, reviewer)
            ).fetchone()
            if row is None:
                raise StaleItemError(f"item {item_id} has no answer of yours to undo (undone or corrected)")
            db.execute("DELETE FROM answers WHERE item_id = ?", (item_id,))
            db.execute("DELETE FROM leases WHERE reviewer = ?", (reviewer,))
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                (item_id, reviewer, time.time() + LEASE_SECONDS, row[0], 0.5, 1),
            )
        self._refresh_score(reviewer, item_id)
        self._log("undid the answer to", reviewer, item_id, None, "")

    def correct(self, lead: str, item_id: int, yes: bool) -> None:
        """A lead's answer replaces another's; the answer replaced is kept beside it."""
        with self._lock, self._set() as review_set:
            given = review_set.answers().get(item_id)
            if given is None:
                raise StaleItemError(f"item {item_id} has no answer to correct (undone since)")
            if given.yes == yes:
                return
            review_set.record(
                item_id, yes, given.held_out, given.strategy, lead, Previous(given.reviewer, given.yes)
            )
        self._log(
            "corrected",
            lead,
            item_id,
            yes,
            f" (was {given.reviewer or 'unnamed'}: {'yes' if given.yes else 'no'})",
        )

    def skip(self, reviewer: str, item_id: int) -> None:
        """Never show this item to this reviewer again; the others may still get it."""
        with self._lock, self._db() as db:
            db.execute("INSERT OR IGNORE INTO skips VALUES (?, ?)", (item_id, reviewer))
            db.execute("DELETE FROM leases WHERE item_id = ? AND reviewer = ?", (item_id, reviewer))

    def progress(self, reviewer: str) -> Progress:
        """The whole set (the labels under review, items with features) as ``reviewer`` sees it."""
        now = time.time()
        with self._set() as review_set:
            ids = {i.id for label in self.labels for i in review_set.items(label) if self._has_features(i.id)}
        with self._db() as db:
            answered = {int(r[0]) for r in db.execute("SELECT item_id FROM answers")}
            others = "SELECT item_id FROM leases WHERE reviewer != ? AND expires_at >= ?"
            held = {int(r[0]) for r in db.execute(others, (reviewer, now))}
            mine = "SELECT item_id FROM skips WHERE reviewer = ?"
            skipped = {int(r[0]) for r in db.execute(mine, (reviewer,))}
        free = ids - answered
        return Progress(len(ids), len(ids & answered), len(free & held), len(free & (skipped - held)))

    def recent(self, exclude: str, limit: int = 20) -> list[Recent]:
        """The latest answers of reviewers other than ``exclude``, newest first (for a lead)."""
        with self._db() as db:
            query = "SELECT item_id FROM answers WHERE reviewer IS NOT ? ORDER BY seq DESC LIMIT ?"
            rows = db.execute(query, (exclude, limit)).fetchall()
        with self._set() as review_set:
            answers = review_set.answers()
        return [Recent(self.item(int(r[0])), answers[int(r[0])]) for r in rows]

    def stats(self) -> list[LabelStats]:
        """Progress per label under review."""
        out = []
        with self._set() as review_set:
            answers = review_set.answers()
            for label in self.labels:
                ids = [item.id for item in review_set.items(label) if self._has_features(item.id)]
                given = [answers[i] for i in ids if i in answers]
                accuracy = held_out_accuracy(review_set, self.features, label)
                out.append(
                    LabelStats(
                        label,
                        len(ids),
                        len(given),
                        sum(a.yes for a in given),
                        accuracy.accuracy,
                        accuracy.count,
                    )
                )
        return out

    def item(self, item_id: int) -> ReviewItem:
        """One item of the set by id (``PrelabelError`` when there is none)."""
        with self._set() as review_set:
            found = review_set.item(item_id)
        if found is None:
            raise PrelabelError(f"{self.path}: no item {item_id}")
        return found

    def _has_features(self, item_id: int) -> bool:
        return self.features is None or item_id in self.features

    def _choose(self, blocked: set[int], reviewer: str) -> Shown | None:
        with self._set() as review_set:
            answers = review_set.answers()
            counts = {
                label: sum(item.id in answers for item in review_set.items(label)) for label in self.labels
            }
            for label in sorted(self.labels, key=lambda name: (counts[name], name)):
                taken = answers.keys() | blocked
                free = [i for i in review_set.items(label) if self._has_features(i.id) and i.id not in taken]
                if not free:  # done, held by others, or no features for this label
                    continue
                for s in next_items(
                    review_set,
                    self.features,
                    label,
                    self.strategy,
                    self.target,
                    1,
                    self.seed,
                    exclude=blocked,
                    draw_key=reviewer,
                ):
                    return Shown(s.item, s.p_yes, s.held_out, s.cold_start)
        return None

    def _refresh_score(self, reviewer: str, item_id: int) -> None:
        """The undone item's P(yes) under the model refitted without its answer."""
        item = self.item(item_id)
        others = {i.id for i in self._items(item.label)} - {item_id}
        with self._set() as review_set:
            for s in next_items(
                review_set,
                self.features,
                item.label,
                self.strategy,
                self.target,
                1,
                self.seed,
                exclude=others,
            ):
                with self._db() as db:
                    db.execute(
                        "UPDATE leases SET p_yes = ?, cold_start = ? WHERE item_id = ? AND reviewer = ?",
                        (s.p_yes, int(s.cold_start), item_id, reviewer),
                    )

    def _items(self, label: str) -> list[ReviewItem]:
        with self._set() as review_set:
            return review_set.items(label)

    def _log(self, what: str, reviewer: str, item_id: int, yes: bool | None, note: str) -> None:
        item = self.item(item_id)
        said = "" if yes is None else (": yes" if yes else ": no")
        log.info(
            "%s %s item %d (%s, %s, task %s)%s%s",
            reviewer,
            what,
            item_id,
            item.label,
            task_file_name(item.image),
            item.task_id or "-",
            said,
            note,
        )
