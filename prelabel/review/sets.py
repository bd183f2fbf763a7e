"""Review sets: the items people answer yes or no to, and their answers, in one SQLite file.

One file per set, so the review page (and ``review apply``) can write answers with nothing
but the standard library, and a set can be copied or deleted whole. The schema is small
and stable; ``SCHEMA_VERSION`` changes when it does:

``meta(key, value)``
    ``schema_version``, ``source`` (``project`` or ``references``), ``project_id``,
    ``model_version``, ``per`` (``box`` or ``image``), ``references``, ``created_at``.
``items(id, image, x1, y1, x2, y2, label, score, task_id, prediction_id, region_id)``
    ``id`` keys features and answers. ``image`` is a path, ``s3://`` key, URL or a Label
    Studio ``/data/...`` reference. The box is in pixels of the displayed image (EXIF
    applied); all four NULL means the whole image. ``score`` is the detector's (NULL when
    unknown); ``task_id``, ``prediction_id``, ``region_id`` say where the item came from.
``answers(item_id, answer, held_out, strategy, answered_at, reviewer, seq, previous_reviewer,
previous_answer)``
    ``answer`` 1 = yes, 0 = no. ``held_out`` 1: the item was drawn at random to measure
    accuracy and never trains the model. ``strategy``: what chose the item. ``reviewer``: who
    answered (the review page's reviewer name; NULL from elsewhere). ``seq``: increasing, the
    order of answers. ``previous_*``: the answer a lead's correction replaced, and whose it was.
``leases(item_id, reviewer, expires_at, held_out, p_yes, cold_start)`` (the review page)
    An item shown to a reviewer, kept from the others until ``expires_at`` (Unix seconds),
    with how it was chosen (so a reload shows the same item the same way).
``skips(item_id, reviewer)``
    Items a reviewer skipped: not shown to that reviewer again.
``annotations(task_id, annotation_id)`` (``review apply --annotate``)
    The Label Studio annotation each task got from its accepted regions, so a later apply
    updates that one and never touches an annotation a person made.

Older sets are migrated in place on opening, in one transaction: version 1 (no ``reviewer``,
``seq``, ``leases``, ``skips``) and version 2 (no ``previous_*``, ``annotations``).
"""

from __future__ import annotations

import contextlib
import csv
import math
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from prelabel.convert.geometry import corners_to_xyxy, percent_to_corners
from prelabel.core.atomic import atomic_path
from prelabel.core.errors import PrelabelError

__all__ = [
    "SCHEMA_VERSION",
    "Answer",
    "Per",
    "Previous",
    "ReviewItem",
    "ReviewSet",
    "items_from_references",
    "items_from_tasks",
    "iter_batches",
    "pixel_box",
    "region_label",
]

SCHEMA_VERSION = "3"
Per = Literal["box", "image"]

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    image TEXT NOT NULL,
    x1 REAL, y1 REAL, x2 REAL, y2 REAL,
    label TEXT NOT NULL,
    score REAL,
    task_id INTEGER,
    prediction_id INTEGER,
    region_id TEXT
);
CREATE INDEX items_label ON items (label);
CREATE TABLE answers (
    item_id INTEGER PRIMARY KEY REFERENCES items (id),
    answer INTEGER NOT NULL CHECK (answer IN (0, 1)),
    held_out INTEGER NOT NULL CHECK (held_out IN (0, 1)),
    strategy TEXT NOT NULL,
    answered_at TEXT NOT NULL
);
"""
# Version 2, also the migration of a version-1 set.
_SCHEMA_V2 = """
ALTER TABLE answers ADD COLUMN reviewer TEXT;
ALTER TABLE answers ADD COLUMN seq INTEGER;
UPDATE answers SET seq = item_id;
CREATE TABLE leases (
    item_id INTEGER PRIMARY KEY REFERENCES items (id),
    reviewer TEXT NOT NULL,
    expires_at REAL NOT NULL,
    held_out INTEGER NOT NULL,
    p_yes REAL NOT NULL,
    cold_start INTEGER NOT NULL
);
CREATE TABLE skips (
    item_id INTEGER NOT NULL REFERENCES items (id),
    reviewer TEXT NOT NULL,
    PRIMARY KEY (item_id, reviewer)
);
UPDATE meta SET value = '2' WHERE key = 'schema_version';
"""
# Version 3, also the migration of a version-2 set.
_SCHEMA_V3 = """
ALTER TABLE answers ADD COLUMN previous_reviewer TEXT;
ALTER TABLE answers ADD COLUMN previous_answer INTEGER;
CREATE TABLE annotations (task_id INTEGER PRIMARY KEY, annotation_id INTEGER NOT NULL);
UPDATE meta SET value = '3' WHERE key = 'schema_version';
"""
_MIGRATIONS = {"1": _SCHEMA_V2, "2": _SCHEMA_V3}


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One yes/no question: is ``label`` right for this image (or this box of it)?"""

    image: str
    label: str
    box: tuple[float, float, float, float] | None = None
    score: float | None = None
    task_id: int | None = None
    prediction_id: int | None = None
    region_id: str | None = None
    id: int = 0  # assigned by the set


@dataclass(frozen=True, slots=True)
class Answer:
    """A person's answer to one item (``previous``: the answer a lead's correction replaced)."""

    item_id: int
    yes: bool
    held_out: bool
    strategy: str
    reviewer: str | None = None
    answered_at: str = ""
    previous: Previous | None = None


@dataclass(frozen=True, slots=True)
class Previous:
    """An answer a lead corrected: whose it was and what it said."""

    reviewer: str | None
    yes: bool


class ReviewSet:
    """An open review set; use as a context manager or call ``close``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PrelabelError(f"no review set at {self.path}")
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA foreign_keys = ON")
        version = self.meta.get("schema_version")
        if version in _MIGRATIONS:
            with self._db:  # one transaction: a crash leaves the old version whole
                while version in _MIGRATIONS:
                    for statement in filter(str.strip, _MIGRATIONS[version].split(";")):
                        self._db.execute(statement)
                    version = self._db.execute(
                        "SELECT value FROM meta WHERE key = 'schema_version'"
                    ).fetchone()[0]
        if version != SCHEMA_VERSION:
            self._db.close()
            raise PrelabelError(f"{self.path}: review set schema {version!r}, expected {SCHEMA_VERSION}")

    @classmethod
    def create(
        cls, path: str | Path, items: Iterable[ReviewItem], meta: Mapping[str, Any], overwrite: bool = False
    ) -> ReviewSet:
        """Write a new set whole (a temp file, then a rename: never half a set) and open it."""
        target = Path(path)
        if target.exists() and not overwrite:
            raise PrelabelError(f"{target} exists: choose another --set or pass --overwrite")
        with atomic_path(target) as tmp, contextlib.closing(sqlite3.connect(tmp)) as db, db:
            db.executescript(_SCHEMA)
            db.executescript(_SCHEMA_V2)
            db.executescript(_SCHEMA_V3)
            rows = {"schema_version": SCHEMA_VERSION, "created_at": _now(), **meta}
            db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in rows.items()])
            db.executemany(
                "INSERT INTO items (image, x1, y1, x2, y2, label, score, task_id, prediction_id, "
                "region_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_item_row(item) for item in items),
            )
        return cls(target)

    def __enter__(self) -> ReviewSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @property
    def meta(self) -> dict[str, str]:
        try:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise PrelabelError(f"{self.path} is not a review set ({exc})") from exc

    def items(self, label: str | None = None) -> list[ReviewItem]:
        """The items in id order (of one label when given)."""
        query = "SELECT id, image, x1, y1, x2, y2, label, score, task_id, prediction_id, region_id FROM items"
        rows = (
            self._db.execute(query + " WHERE label = ? ORDER BY id", (label,))
            if label is not None
            else self._db.execute(query + " ORDER BY id")
        )
        return [_item(row) for row in rows]

    def item(self, item_id: int) -> ReviewItem | None:
        """One item by id (None when the set has none)."""
        row = self._db.execute(
            "SELECT id, image, x1, y1, x2, y2, label, score, task_id, prediction_id, region_id FROM items "
            "WHERE id = ?",
            (item_id,),
        ).fetchone()
        return None if row is None else _item(row)

    def labels(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT DISTINCT label FROM items ORDER BY label")]

    def answers(self) -> dict[int, Answer]:
        rows = self._db.execute(
            "SELECT item_id, answer, held_out, strategy, reviewer, answered_at, previous_reviewer, "
            "previous_answer FROM answers"
        )
        out = {}
        for r in rows:
            previous = None if r[7] is None else Previous(r[6], bool(r[7]))
            out[r[0]] = Answer(r[0], bool(r[1]), bool(r[2]), r[3], r[4], r[5], previous)
        return out

    def record(
        self,
        item_id: int,
        yes: bool,
        held_out: bool,
        strategy: str,
        reviewer: str | None = None,
        previous: Previous | None = None,
    ) -> None:
        """Store (or replace) the answer to one item; ``previous``: the answer a correction replaces."""
        before = (None, None) if previous is None else (previous.reviewer, int(previous.yes))
        with self._db:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO answers (item_id, answer, held_out, strategy, answered_at, "
                    "reviewer, seq, previous_reviewer, previous_answer) VALUES (?, ?, ?, ?, ?, ?, "
                    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM answers), ?, ?)",
                    (item_id, int(yes), int(held_out), strategy, _now(), reviewer, *before),
                )
            except sqlite3.IntegrityError as exc:
                raise PrelabelError(f"{self.path}: no item {item_id}") from exc

    def annotations(self) -> dict[int, int]:
        """Task id -> the annotation ``review apply --annotate`` made for it."""
        return dict(self._db.execute("SELECT task_id, annotation_id FROM annotations").fetchall())

    def remember_annotation(self, task_id: int, annotation_id: int) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO annotations VALUES (?, ?)", (task_id, annotation_id))


def items_from_tasks(
    tasks: Iterable[Any], model_version: str, data_key: str, per: Per = "box"
) -> tuple[list[ReviewItem], Counter[str]]:
    """Items from the predictions of ``model_version`` (tasks from ``iter_tasks(full=True)``).

    ``per="box"``: one item per predicted rectangle (rotated ones by their enclosing box).
    ``per="image"``: one item per task and label, scored by that label's best region (any
    region type). Returns the items and counts of what was left out, by reason.
    """
    items: list[ReviewItem] = []
    skipped: Counter[str] = Counter()
    for task in tasks:
        image = task.image_ref(data_key)
        found: list[ReviewItem] = []
        best: dict[str, float | None] = {}
        for prediction in task.predictions:
            if not isinstance(prediction, Mapping) or prediction.get("model_version") != model_version:
                continue
            fallback = _float(prediction.get("score"))
            for result in prediction.get("result") or []:
                label = _label(result)
                if label is None:
                    skipped["no label"] += 1
                    continue
                score = _float(result.get("score"), fallback)
                if per == "image":
                    old = best.get(label)
                    best[label] = score if old is None or (score is not None and score > old) else old
                    continue
                if result.get("type") != "rectanglelabels":
                    skipped[f"{result.get('type')} (not a rectangle)"] += 1
                    continue
                box = pixel_box(result)
                if box is None:
                    skipped["no original_width/height"] += 1
                    continue
                found.append(
                    ReviewItem(
                        image,
                        label,
                        box,
                        score,
                        task.id,
                        _int(prediction.get("id")),
                        str(result.get("id") or "") or None,
                    )
                )
        found.extend(ReviewItem(image, label, None, score, task.id) for label, score in best.items())
        if image:
            items.extend(found)
        elif found:
            skipped[f"task without ${data_key}"] += len(found)
    return items, skipped


def items_from_references(path: str | Path, label: str) -> list[ReviewItem]:
    """Items from a references file: ``img_path[,x1,y1,x2,y2[,label]]`` lines (pixels of the
    displayed image; ``#`` comments and blank lines skipped; relative paths are relative to
    the file's folder). A line without a label gets ``label``."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise PrelabelError(f"cannot read references file {source} ({exc.strerror or exc})") from exc
    items = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        fields = [f.strip() for f in row]
        if not fields or not fields[0] or fields[0].startswith("#"):
            continue
        where = f"{source}:{number}"
        if len(fields) not in (1, 5, 6):
            raise PrelabelError(f"{where}: expected img_path or img_path,x1,y1,x2,y2[,label]")
        image = fields[0]
        if "://" not in image and not Path(image).is_absolute():
            image = str(source.parent / image)
        box = None
        if len(fields) > 1:
            try:
                x1, y1, x2, y2 = (float(v) for v in fields[1:5])
            except ValueError as exc:
                raise PrelabelError(f"{where}: the box must be four numbers ({exc})") from exc
            if not all(map(math.isfinite, (x1, y1, x2, y2))) or x2 <= x1 or y2 <= y1 or min(x1, y1) < 0:
                raise PrelabelError(f"{where}: box {x1},{y1},{x2},{y2} is not x1<x2, y1<y2, non-negative")
            box = (x1, y1, x2, y2)
        items.append(ReviewItem(image, fields[5] if len(fields) == 6 and fields[5] else label, box))
    if not items:
        raise PrelabelError(f"references file {source} lists no images")
    return items


def _label(result: Mapping[str, Any]) -> str | None:
    kind = str(result.get("type") or "")
    value = result.get("value") or {}
    labels = value.get(kind) if isinstance(value, Mapping) else None
    if isinstance(labels, list) and labels:
        return str(labels[0])
    return None


def region_label(result: Mapping[str, Any]) -> str | None:
    """The first label of a Label Studio result (``value[<type>][0]``), None without one."""
    return _label(result)


def pixel_box(result: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """A rectangle result's box, xyxy pixels of the displayed image (None without its size)."""
    width, height = _int(result.get("original_width")), _int(result.get("original_height"))
    if not width or not height:
        return None
    return corners_to_xyxy(percent_to_corners(result["value"], width, height))


def _float(value: Any, default: float | None = None) -> float | None:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _item_row(item: ReviewItem) -> tuple[Any, ...]:
    box: Sequence[float | None] = item.box or (None, None, None, None)
    return (item.image, *box, item.label, item.score, item.task_id, item.prediction_id, item.region_id)


def _item(row: Sequence[Any]) -> ReviewItem:
    box = None if row[2] is None else (float(row[2]), float(row[3]), float(row[4]), float(row[5]))
    return ReviewItem(row[1], row[6], box, row[7], row[8], row[9], row[10], id=int(row[0]))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def iter_batches(items: Sequence[ReviewItem], size: int) -> Iterator[Sequence[ReviewItem]]:
    """``items`` in consecutive batches of ``size``."""
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]
