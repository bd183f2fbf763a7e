"""The overlapping batch loop: order, errors where the plain loop raises them, bounded memory,
and recorded stage intervals that overlap (forced by handshakes, never by timing)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator

import pytest

from prelabel.predict.stages import overlapped
from tests.support.stages import Handshakes, Intervals, assert_overlapped


def test_decode_next_and_finish_previous_overlap_the_work(intervals: Intervals) -> None:
    count = 4
    meet = Handshakes(count)

    def prepare(k: int) -> int:
        meet.prepare(k)
        return k

    def work(k: int) -> int:
        meet.work(k)
        return k * 10

    def finish(v: int) -> int:
        meet.finish(v // 10)
        return v + 1

    assert list(overlapped(range(count), prepare, work, finish)) == [1, 11, 21, 31]
    assert meet.missed == []
    assert_overlapped(intervals.seen, count)


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


def test_batches_that_fail_raise_after_the_batches_they_gave() -> None:
    """A listing that breaks after three batches: those three are finished and handed over first."""

    def batches() -> Iterator[int]:
        yield from range(3)
        raise ValueError("listing failed after batch 2")

    got: list[int] = []
    with pytest.raises(ValueError, match="listing failed"):
        for value in overlapped(batches(), lambda k: k, lambda k: k, lambda k: k):
            got.append(value)
    assert got == [0, 1, 2]


def _stage_threads() -> list[str]:
    return [
        t.name for t in threading.enumerate() if t.name.startswith(("prelabel-prepare", "prelabel-finish"))
    ]


def test_a_consumer_that_stops_or_an_interrupt_leaves_no_stage_running() -> None:
    """Closing the loop early (a cancelled run, a break) or an interrupt in the work waits for the
    stages in flight and starts no more: no thread is left behind, few batches were read."""
    prepared: list[int] = []

    def prepare(k: int) -> int:
        prepared.append(k)
        return k

    loop = overlapped(range(100), prepare, lambda k: k, lambda k: k)
    assert (next(loop), next(loop)) == (0, 1)
    loop.close()
    assert _stage_threads() == [] and len(prepared) <= 5

    def interrupted(k: int) -> int:
        if k == 3:
            raise KeyboardInterrupt
        return k

    prepared.clear()
    with pytest.raises(KeyboardInterrupt):
        list(overlapped(range(100), prepare, interrupted, lambda k: k))
    assert _stage_threads() == [] and len(prepared) <= 6
