"""The command line's exit codes, and SIGTERM raised as Ctrl-C is.

0 done, 1 some images failed, 2 a mistake, 3 the project stayed held by another run past
``--wait``, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Commands and the error
boundary in ``prelabel_cli.app`` both end with these, so they live below both.
"""

from __future__ import annotations

__all__ = [
    "EXIT_IMAGES_FAILED",
    "EXIT_INPUT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_PROJECT_BUSY",
    "EXIT_TERMINATED",
    "Terminated",
    "interrupt_code",
]

EXIT_IMAGES_FAILED = 1
EXIT_INPUT_ERROR = 2
EXIT_PROJECT_BUSY = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is, so a terminated run unwinds (and frees its project) the same way."""


def interrupt_code(interrupt: KeyboardInterrupt) -> int:
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
