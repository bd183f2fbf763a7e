"""Stage intervals and handshakes for the overlapped batch loop: overlap forced by handshakes,
never by timing (unit and integration tiers share them)."""

from __future__ import annotations

import logging
import threading

from prelabel.predict.stages import Interval

WAIT = 10.0  # seconds a handshake waits before the test fails (a sequential loop never completes one)


class Intervals(logging.Handler):
    """Collects the stage intervals ``prelabel.predict.stages`` logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: dict[tuple[str, int], Interval] = {}

    def emit(self, record: logging.LogRecord) -> None:
        interval: Interval = record.stage_interval  # type: ignore[attr-defined]
        self.seen[interval.stage, interval.batch] = interval


class Handshakes:
    """Each stage of batch k starts, then waits until a neighbouring stage has started: it can
    only complete when both run at once (a sequential loop times out and is reported)."""

    def __init__(self, count: int) -> None:
        self.started = {
            (s, k): threading.Event() for s in ("prepare", "work", "finish") for k in range(count)
        }
        self.missed: list[str] = []

    def meet(self, me: tuple[str, int], *others: tuple[str, int]) -> None:
        self.started[me].set()
        for other in others:
            if other in self.started and not self.started[other].wait(WAIT):
                self.missed.append(f"{me} never saw {other} running")

    def prepare(self, k: int) -> None:
        self.meet(("prepare", k), ("work", k - 1))

    def work(self, k: int) -> None:
        self.meet(("work", k), ("prepare", k + 1), ("finish", k - 1))

    def finish(self, k: int) -> None:
        self.meet(("finish", k), ("work", k + 1))


def assert_overlapped(seen: dict[tuple[str, int], Interval], count: int) -> None:
    """Decode of k+1 and finishing of k-1 overlapped the work on k; each batch's stages in order."""
    assert len(seen) == 3 * count
    for k in range(count - 1):
        assert seen["prepare", k + 1].overlaps(seen["work", k])
        assert seen["finish", k].overlaps(seen["work", k + 1])
    for k in range(count):
        assert (
            seen["prepare", k].end <= seen["work", k].start <= seen["work", k].end <= seen["finish", k].start
        )
