"""Python's cyclic garbage collector, paused while a command loads its modules.

Loading the command line, Prefect, pydantic's models and the flows allocates objects that
live as long as the command; collecting meanwhile frees nothing and costs about 0.2 s of each
flow command's start (one sixth of its imports, measured here on 2 cores). So the loading,
and only the loading, runs with the collector off: the command line's own modules in
``main``, a flow's where the command imports it. Whatever the command then does, it does
with the collector on. In the ``prelabel`` process itself (``main`` says so) what was loaded
is also frozen out of the collector's later passes (``gc.freeze``: about 0.2 s less at the
start and 0.5 s at the end of a short run); a process that runs commands in turn (a test) is
left as it was, since a freeze would also keep whatever garbage was waiting then.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused", "one_command_process"]


class _Process:
    one_command = False  # it runs one command and ends: what it loads lives until then


def one_command_process() -> None:
    """This process runs one command and ends (the ``prelabel`` entry point)."""
    _Process.one_command = True


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The collector off for the block (imports), on again after it, even when it raises; a
    collector that was already off stays off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if _Process.one_command:
            gc.freeze()
        gc.enable()
