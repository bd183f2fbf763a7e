"""Hand-overs without servers: the record of tasks a run holds (claimed once, across processes,
for its time to live) and the debouncer that makes a burst of webhooks one run."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Hashable
from pathlib import Path

import pytest

from prelabel.serve.handoff import Debouncer, HandoffRegistry


def test_a_task_is_claimed_once_until_its_run_has_had_its_time(tmp_path: Path) -> None:
    registry = HandoffRegistry(tmp_path / "handoffs.sqlite", ttl=0.5)
    assert registry.claim(3, "v1", [5, 6, 6, 7]) == [5, 6, 7]  # a repeat counted once
    registry.record(3, "v1", [5, 6, 7], "run-a")
    assert registry.claim(3, "v1", [6, 7, 8]) == [8]
    assert registry.claim(4, "v1", [6]) == [6]  # another project
    assert registry.claim(3, "v2", [6]) == [6]  # another model version
    assert registry.pending(3, "v1", [5, 8, 9]) == {5, 8}
    registry.release(3, "v1", [8])  # a hand-over that failed
    assert registry.pending(3, "v1", [8]) == set()
    time.sleep(0.6)
    assert registry.pending(3, "v1", [5, 6, 7]) == set()  # the run had its time: asked about again
    assert registry.claim(3, "v1", [5]) == [5]


def _claim(path: str, tasks: list[int], out: multiprocessing.Queue[list[int]]) -> None:
    out.put(HandoffRegistry(Path(path), ttl=60).claim(1, "v", tasks))


def test_worker_processes_never_both_claim_a_task(tmp_path: Path) -> None:
    path = str(tmp_path / "handoffs.sqlite")
    HandoffRegistry(Path(path), ttl=60)
    context = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[int]] = context.Queue()
    workers = [
        context.Process(target=_claim, args=(path, list(range(k, k + 50)), out)) for k in range(0, 40, 5)
    ]
    for worker in workers:
        worker.start()
    claimed = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(30)
    flat = [task for got in claimed for task in got]
    assert sorted(flat) == list(range(0, 85))  # every task once, none twice


class Acts:
    def __init__(self) -> None:
        self.calls: list[tuple[Hashable, list[int]]] = []
        self.done = threading.Event()

    def __call__(self, key: Hashable, items: list[int]) -> None:
        self.calls.append((key, items))
        self.done.set()


def test_a_burst_of_events_is_one_act_per_key() -> None:
    acts = Acts()
    debouncer = Debouncer(acts, quiet=0.3, longest=10)
    for start in range(0, 50, 10):
        debouncer.add(3, range(start, start + 10))
        debouncer.add(4, [start])
        time.sleep(0.05)
    debouncer.add(3, [0, 1])  # already gathered
    time.sleep(0.8)
    assert sorted(acts.calls, key=str) == [(3, list(range(50))), (4, [0, 10, 20, 30, 40])]
    debouncer.add(3, [99])  # after the act: a new gathering
    time.sleep(0.6)
    assert acts.calls[-1] == (3, [99])


def test_a_steady_stream_is_handed_over_after_the_longest_wait() -> None:
    acts = Acts()
    debouncer = Debouncer(acts, quiet=0.3, longest=0.6)
    started = time.monotonic()
    for number in range(20):
        debouncer.add(1, [number])
        if acts.done.is_set():
            break
        time.sleep(0.1)
    assert acts.done.wait(2)
    assert time.monotonic() - started < 1.5
    assert acts.calls[0][1][0] == 0


def test_flush_acts_now_and_a_failing_act_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def fail(key: Hashable, items: list[int]) -> None:
        raise RuntimeError(f"no Prefect for {key}")

    acts = Acts()
    debouncer = Debouncer(acts, quiet=60, longest=60)
    debouncer.add(7, [1, 2])
    debouncer.flush()
    assert acts.calls == [(7, [1, 2])]
    failing = Debouncer(fail, quiet=0.05, longest=1)
    with caplog.at_level(logging.ERROR, logger="prelabel.serve"):
        failing.add(8, [1])
        time.sleep(0.3)
    assert "handing over 1 gathered items of 8 failed" in caplog.text
    assert "no Prefect for 8" in caplog.text
