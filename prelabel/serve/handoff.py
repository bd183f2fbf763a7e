"""Work handed to flow runs: which tasks are already with one, and events gathered before handing.

``Handoff`` is what the server hands work to: a run of the ``preannotate`` deployment for tasks
(by id), a run of ``pull-annotations`` for a project. Its implementation talks to Prefect, so it
lives in ``flows.handoff``; this package only calls it.

``HandoffRegistry`` records the tasks handed to a run, in SQLite beside the server, shared by all
its worker processes: a task with a run of its own is never answered by ``/predict`` (Label
Studio would store that prediction and the run post another) nor handed over again, until the
run has had ``ttl`` seconds (then it is asked about again; the run itself skips what it finds
predicted, so a slow run still posts each task once). ``claim`` is one transaction, so two
workers never both claim a task.

``Debouncer`` gathers events per key (a project) and acts once no event came for ``quiet``
seconds, or ``longest`` after the first: an import of many files arrives as many webhooks and
becomes one run.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Protocol

__all__ = ["Debouncer", "Handoff", "HandoffRegistry"]

log = logging.getLogger("prelabel.serve")


class Handoff(Protocol):
    """Where work goes that does not fit in a request (``flows.handoff.DeploymentHandoff``)."""

    def preannotate(self, project_id: int, task_ids: Sequence[int], model_version: str) -> str:
        """Start one run that predicts exactly these tasks (idempotent); its id."""
        ...

    def pull(self, project_id: int) -> str:
        """Start an incremental pull of the project's annotations; its id."""
        ...


class HandoffRegistry:
    """Tasks handed to runs, per project and model version (see the module docstring)."""

    def __init__(self, path: Path, ttl: float) -> None:
        self.path, self.ttl = path, ttl
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS handed (project INTEGER, version TEXT, task INTEGER, run TEXT, "
                "at REAL, PRIMARY KEY (project, version, task))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def pending(self, project: int, version: str, tasks: Iterable[int]) -> set[int]:
        """Which of ``tasks`` a run has had for less than ``ttl`` seconds."""
        wanted = list(tasks)
        with closing(self._connect()) as db:
            return {task for task in wanted if self._held(db, project, version, task)}

    def claim(self, project: int, version: str, tasks: Iterable[int]) -> list[int]:
        """Of ``tasks``, those no run holds, now held (by a run to be ``record``ed), in order."""
        now, claimed = time.time(), []
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for task in dict.fromkeys(tasks):
                    if not self._held(db, project, version, task):
                        db.execute(
                            "INSERT OR REPLACE INTO handed VALUES (?, ?, ?, '', ?)",
                            (project, version, task, now),
                        )
                        claimed.append(task)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return claimed

    def record(self, project: int, version: str, tasks: Sequence[int], run: str) -> None:
        """The run that took the claimed ``tasks``."""
        with closing(self._connect()) as db:
            db.executemany(
                "UPDATE handed SET run = ? WHERE project = ? AND version = ? AND task = ?",
                [(run, project, version, task) for task in tasks],
            )

    def release(self, project: int, version: str, tasks: Sequence[int]) -> None:
        """Claimed ``tasks`` no run took (the hand-over failed): free to be asked about again."""
        with closing(self._connect()) as db:
            db.executemany(
                "DELETE FROM handed WHERE project = ? AND version = ? AND task = ?",
                [(project, version, task) for task in tasks],
            )

    def _held(self, db: sqlite3.Connection, project: int, version: str, task: int) -> bool:
        row = db.execute(
            "SELECT at FROM handed WHERE project = ? AND version = ? AND task = ?", (project, version, task)
        ).fetchone()
        return row is not None and time.time() - float(row[0]) < self.ttl


class Debouncer:
    """Items gathered per key; ``act(key, items)`` once the key is quiet (see the module docstring).

    ``act`` runs on a timer thread; its errors are logged, never raised (the events are gone
    either way: the webhook was answered). ``flush`` acts on everything now (at shutdown)."""

    def __init__(self, act: Callable[[Hashable, list[int]], None], quiet: float, longest: float) -> None:
        self.act, self.quiet, self.longest = act, quiet, max(quiet, longest)
        self._lock = threading.Lock()
        self._gathered: dict[Hashable, tuple[list[int], float, threading.Timer]] = {}

    def add(self, key: Hashable, items: Iterable[int]) -> None:
        """Gather ``items`` under ``key``; its timer starts again (within ``longest``)."""
        with self._lock:
            gathered: list[int] = []
            first = time.monotonic()
            if key in self._gathered:
                gathered, first, earlier = self._gathered[key]
                earlier.cancel()
            gathered += [item for item in items if item not in gathered]
            wait = min(self.quiet, max(0.0, first + self.longest - time.monotonic()))
            timer = threading.Timer(wait, self._fire, (key,))
            timer.daemon = True
            self._gathered[key] = (gathered, first, timer)
            timer.start()

    def flush(self) -> None:
        """Act on every key now."""
        with self._lock:
            keys = list(self._gathered)
            for key in keys:
                self._gathered[key][2].cancel()
        for key in keys:
            self._fire(key)

    def _fire(self, key: Hashable) -> None:
        with self._lock:
            entry = self._gathered.pop(key, None)
        if entry is None:
            return
        try:
            self.act(key, entry[0])
        except Exception:  # a timer thread has no caller to raise to: the log says it, with the traceback
            log.exception("handing over %d gathered items of %s failed", len(entry[0]), key)
