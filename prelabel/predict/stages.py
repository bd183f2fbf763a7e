"""Batches through three overlapping stages: prepare -> work -> finish.

``prepare`` (read, hash, look up the cache, decode pixels) runs in a background thread up
to ``ahead`` batches before ``work`` (the model), which runs on the caller's thread (the
accelerator's work and Prefect's task runs stay where they were); ``finish`` (convert,
encode, post or write) runs on one background thread, in batch order, at most ``ahead``
batches behind. So while the model works on batch k, batch k+1 is decoded and batch k-1
posted; at most ``2 * ahead + 1`` batches are held at once.

Results come back in batch order, as a plain loop would return them. A stage that raises
for batch k raises from the iterator after the results of the batches before k, exactly
where the plain loop would have raised (so does ``batches`` itself, failing to give batch
k); the stages themselves still turn per-image failures into error rows. Each stage runs in
a copy of the caller's context variables (Prefect's run context travels with it).

Every stage's interval (``time.monotonic``) is logged at DEBUG on ``prelabel.predict.stages``
with the ``Interval`` in the record's ``stage_interval`` attribute: a handler can collect
them and check which stages overlapped, without timing anything.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Interval", "overlapped"]

log = logging.getLogger(__name__)

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
R = TypeVar("R")


@dataclass(frozen=True)
class Interval:
    """When one stage of one batch (numbered from 0) ran, in ``time.monotonic`` seconds."""

    stage: str  # "prepare" | "work" | "finish"
    batch: int
    start: float
    end: float

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


def _timed(stage: str, batch: int, run: Callable[[A], R], value: A) -> R:
    start = time.monotonic()
    try:
        return run(value)
    finally:
        interval = Interval(stage, batch, start, time.monotonic())
        log.debug(
            "%s of batch %d: %.4f s", stage, batch, interval.end - start, extra={"stage_interval": interval}
        )


def _submit(pool: ThreadPoolExecutor, stage: str, batch: int, run: Callable[[A], R], value: A) -> Future[R]:
    context = contextvars.copy_context()  # one copy per call: a context is entered by one thread at a time
    return pool.submit(context.run, _timed, stage, batch, run, value)


def overlapped(
    batches: Iterable[A],
    prepare: Callable[[A], B],
    work: Callable[[B], C],
    finish: Callable[[C], D],
    *,
    ahead: int = 1,
) -> Iterator[D]:
    """``finish(work(prepare(batch)))`` for each batch, in order, the three stages overlapping."""
    ahead = max(1, ahead)
    source = enumerate(batches)
    prepared: deque[Future[B]] = deque()
    finishing: deque[Future[D]] = deque()
    with (
        ThreadPoolExecutor(1, "prelabel-prepare") as preparer,
        ThreadPoolExecutor(1, "prelabel-finish") as finisher,
    ):

        def prefetch() -> None:
            while len(prepared) < ahead:
                try:
                    k, batch = next(source)
                except StopIteration:
                    return
                except Exception as exc:  # noqa: BLE001  (the batches' own failure: raised in its turn)
                    failed: Future[B] = Future()
                    failed.set_exception(exc)
                    prepared.append(failed)
                    return
                prepared.append(_submit(preparer, "prepare", k, prepare, batch))

        try:
            prefetch()
            number = 0
            failure: Exception | None = None
            while prepared:
                try:
                    ready = prepared.popleft().result()
                    prefetch()
                    done = _timed("work", number, work, ready)
                except Exception as exc:  # noqa: BLE001  (re-raised below, after the earlier results)
                    failure = exc
                    break
                finishing.append(_submit(finisher, "finish", number, finish, done))
                number += 1
                while len(finishing) > ahead:
                    yield finishing.popleft().result()
            while finishing:
                yield finishing.popleft().result()
            if failure is not None:
                raise failure
        finally:
            for waiting in (prepared, finishing):
                for future in waiting:
                    future.cancel()
