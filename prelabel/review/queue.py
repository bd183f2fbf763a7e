"""The review page's queue: which item a reviewer sees, leases, skips, answers and undo.

Everything lives in the set's SQLite file (``leases``, ``skips``, ``answers``; see
``prelabel.review.sets``) and is written when it happens, so a closed tab or a crashed
server loses nothing and a reload shows the same item. An item shown is leased to its
reviewer for ``LEASE_SECONDS``: the others get the strategy's next item instead. Labels
are reviewed in turn: the label with the fewest answers first, then the strategy within it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prelabel.errors import PrelabelError
from prelabel.review.learning import Strategy, Target, held_out_accuracy, next_items
from prelabel.review.sets import ReviewItem, ReviewSet

__all__ = ["LEASE_SECONDS", "LabelStats", "ReviewQueue", "Shown"]

LEASE_SECONDS = 600.0


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


class ReviewQueue:
    """One set under review by any number of reviewers (ids chosen by their pages)."""

    def __init__(
        self,
        path: str | Path,
        features: dict[int, npt.NDArray[np.floating]],
        strategy: Strategy = "entropy",
        target: Target = "yes",
        seed: int = 0,
        label: str | None = None,
    ) -> None:
        self.path, self.features, self.seed = Path(path), features, seed
        self.strategy, self.target = strategy, target
        self._lock = threading.Lock()  # choosing and leasing is one step across reviewers
        with self._set() as review_set:  # migrates a version-1 set once, up front
            labels = review_set.labels()
            if not any(item.id in features for item in review_set.items()):
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
        """The reviewer's leased item (renewed), else the next one, leased; None when all are done."""
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
            shown = self._choose(blocked)
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
                raise PrelabelError(f"item {item_id} is not leased to this reviewer (expired or answered)")
            with self._set() as review_set:
                strategy = "random" if row[0] else self.strategy
                review_set.record(item_id, yes, bool(row[0]), strategy, reviewer)
            with self._db() as db:
                db.execute("DELETE FROM leases WHERE item_id = ?", (item_id,))

    def undo(self, reviewer: str) -> int | None:
        """Forget the reviewer's last answer and lease its item back to them; its id, or None."""
        with self._lock, self._db() as db:
            row = db.execute(
                "SELECT item_id, held_out FROM answers WHERE reviewer = ? ORDER BY seq DESC LIMIT 1",
                (reviewer,),
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM answers WHERE item_id = ?", (row[0],))
            db.execute("DELETE FROM leases WHERE reviewer = ?", (reviewer,))
            db.execute(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                (row[0], reviewer, time.time() + LEASE_SECONDS, row[1], 0.5, 1),
            )
        item_id = int(row[0])
        self._refresh_score(reviewer, item_id)
        return item_id

    def skip(self, reviewer: str, item_id: int) -> None:
        """Never show this item to this reviewer again; the others may still get it."""
        with self._lock, self._db() as db:
            db.execute("INSERT OR IGNORE INTO skips VALUES (?, ?)", (item_id, reviewer))
            db.execute("DELETE FROM leases WHERE item_id = ? AND reviewer = ?", (item_id, reviewer))

    def stats(self) -> list[LabelStats]:
        """Progress per label under review."""
        out = []
        with self._set() as review_set:
            answers = review_set.answers()
            for label in self.labels:
                ids = [item.id for item in review_set.items(label)]
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

    def _choose(self, blocked: set[int]) -> Shown | None:
        with self._set() as review_set:
            answers = review_set.answers()
            counts = {
                label: sum(item.id in answers for item in review_set.items(label)) for label in self.labels
            }
            for label in sorted(self.labels, key=lambda name: (counts[name], name)):
                free = [i for i in review_set.items(label) if i.id in self.features and i.id not in answers]
                if not free:  # done, or no features for this label
                    continue
                wanted = sum(item.id in blocked for item in free) + 1
                for s in next_items(
                    review_set, self.features, label, self.strategy, self.target, wanted, self.seed
                ):
                    if s.item.id not in blocked:
                        return Shown(s.item, s.p_yes, s.held_out, s.cold_start)
        return None

    def item(self, item_id: int) -> ReviewItem:
        """One item of the set by id (StopIteration when there is none)."""
        with self._set() as review_set:
            return next(item for item in review_set.items() if item.id == item_id)

    def _refresh_score(self, reviewer: str, item_id: int) -> None:
        """The undone item's P(yes) under the model refitted without its answer."""
        item = self.item(item_id)
        with self._set() as review_set:
            for s in next_items(
                review_set,
                self.features,
                item.label,
                self.strategy,
                self.target,
                len(self.features),
                self.seed,
            ):
                if s.item.id == item_id:
                    with self._db() as db:
                        db.execute(
                            "UPDATE leases SET p_yes = ?, cold_start = ? WHERE item_id = ? AND reviewer = ?",
                            (s.p_yes, int(s.cold_start), item_id, reviewer),
                        )
                    return
