"""The garbage collector paused while a command loads, and back (with the loaded objects frozen
out of its passes) when a flow or a server starts."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from prelabel_cli.collector import pause_collector, resume_collector


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    yield
    gc.enable()
    gc.unfreeze()


def test_paused_then_resumed_with_what_was_loaded_frozen() -> None:
    pause_collector()
    assert not gc.isenabled()
    loaded = [[] for _ in range(1000)]  # stands for the modules' objects
    resume_collector()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(loaded)


def test_resuming_a_collector_that_was_never_paused_freezes_nothing() -> None:
    resume_collector()
    assert gc.isenabled() and gc.get_freeze_count() == 0
