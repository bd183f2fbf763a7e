"""Python's cyclic garbage collector, paused while a command loads its modules.

Loading the command line, Prefect, pydantic's models and the flows allocates objects that
live as long as the command; collecting meanwhile frees nothing and costs about 0.2 s of each
command's start (one sixth of its imports, measured here on 2 cores). ``main`` pauses the
collector; it comes back, with what was loaded frozen out of its passes, before anything runs
long: a flow run, a server. The other commands are short and make few cycles.
"""

from __future__ import annotations

import gc

__all__ = ["pause_collector", "resume_collector"]


def pause_collector() -> None:
    """Off until ``resume_collector`` (or the process ends)."""
    gc.disable()


def resume_collector() -> None:
    """Back on, if paused, with everything allocated so far out of its passes (``gc.freeze``:
    the loaded modules are never garbage, and each later pass skips them)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
