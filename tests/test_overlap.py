"""The overlapping batch loop: order, errors where the plain loop raises them, bounded memory,
and recorded stage intervals that overlap (forced by handshakes, never by timing)."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator

import pytest

from prelabel.overlap import Interval, overlapped

WAIT = 10.0  # seconds a handshake waits before the test fails (a sequential loop never completes one)


class Intervals(logging.Handler):
    """Collects the stage intervals ``prelabel.overlap`` logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: dict[tuple[str, int], Interval] = {}

    def emit(self, record: logging.LogRecord) -> None:
        interval: Interval = record.stage_interval  # type: ignore[attr-defined]
        self.seen[interval.stage, interval.batch] = interval


@pytest.fixture
def intervals() -> Iterator[Intervals]:
    logger, handler = logging.getLogger("prelabel.overlap"), Intervals()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_decode_next_and_finish_previous_overlap_the_work(intervals: Intervals) -> None:
    count = 4
    started = {(stage, k): threading.Event() for stage in ("prepare", "work", "finish") for k in range(count)}
    missed: list[str] = []

    def meet(me: tuple[str, int], other: tuple[str, int]) -> None:
        """Start ``me``, then wait until ``other`` has started: both are running at once."""
        started[me].set()
        if other in started and not started[other].wait(WAIT):
            missed.append(f"{me} never saw {other} running")

    def prepare(k: int) -> int:
        meet(("prepare", k), ("work", k - 1))
        return k

    def work(k: int) -> int:
        meet(("work", k), ("prepare", k + 1))
        meet(("work", k), ("finish", k - 1))
        return k * 10

    def finish(v: int) -> int:
        meet(("finish", v // 10), ("work", v // 10 + 1))
        return v + 1

    assert list(overlapped(range(count), prepare, work, finish)) == [1, 11, 21, 31]
    assert missed == []
    seen = intervals.seen
    assert len(seen) == 3 * count
    for k in range(count - 1):
        assert seen["prepare", k + 1].overlaps(seen["work", k])
        assert seen["finish", k].overlaps(seen["work", k + 1])
    for k in range(count):  # within a batch the stages follow each other
        assert (
            seen["prepare", k].end <= seen["work", k].start <= seen["work", k].end <= seen["finish", k].start
        )


@pytest.mark.parametrize("stage", ["prepare", "work", "finish"])
def test_a_failing_stage_raises_after_the_earlier_batches_results(stage: str) -> None:
    def step(name: str):  # type: ignore[no-untyped-def]
        def run(k: int) -> int:
            if name == stage and k == 2:
                raise ValueError(f"{name} of batch 2")
            return k

        return run

    got: list[int] = []
    with pytest.raises(ValueError, match=f"{stage} of batch 2"):
        for value in overlapped(range(5), step("prepare"), step("work"), step("finish")):
            got.append(value)
    assert got == [0, 1]


@pytest.mark.parametrize("ahead", [1, 2])
def test_batches_in_flight_are_bounded(ahead: int) -> None:
    """An instant prepare and a slow consumer: a loop without a bound would read everything."""
    prepared: list[int] = []
    held = []

    def prepare(k: int) -> int:
        prepared.append(k)
        return k

    for value in overlapped(range(20), prepare, lambda k: k, lambda k: k, ahead=ahead):
        held.append(len(prepared) - value)  # batches read but not yet handed to the consumer
    assert max(held) <= 2 * ahead + 1
    assert len(prepared) == 20


def test_stages_see_the_callers_context_and_empty_input() -> None:
    run = contextvars.ContextVar("run", default="none")
    run.set("flow-run-1")
    seen = list(overlapped(range(3), lambda k: run.get(), lambda v: v, lambda v: (v, run.get())))
    assert seen == [("flow-run-1", "flow-run-1")] * 3
    assert list(overlapped([], lambda k: k, lambda k: k, lambda k: k)) == []
