"""``prelabel``: the command-line entry point (``prelabel_cli.main:main``).

The app is built, and its error boundary lives, in ``app``, which imports the command modules
by topic: ``predict`` (run, post, infer, convert), ``data`` (ingest, export, pull), ``quality``
(the model against what people kept), ``review`` (the yes/no loop), ``serve`` (the ML backend,
project connect), ``project`` (create, show), ``servers`` (labelstudio, server, demo) and
``catalog`` (models, samples, version). Below them: options written once in ``options``, the
checks before work in ``checks``, flow runs in ``runs``, exit codes in ``exits``, the garbage
collector's pause while the command loads in ``collector``.
"""

from __future__ import annotations

from prelabel_cli.collector import pause_collector

__all__ = ["main"]


def main() -> None:
    """The ``prelabel`` command: the garbage collector paused before anything loads, then the app."""
    pause_collector()  # a flow or a server resumes it
    from prelabel_cli.app import main as run_app

    run_app()


if __name__ == "__main__":
    main()
