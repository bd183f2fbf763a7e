"""``prelabel``: the command-line entry point (``prelabel_cli.main:main``).

The app is built, and its error boundary lives, in ``app``, which imports the command modules
by topic: ``predict`` (run, post, infer, convert), ``data`` (ingest, export, pull), ``quality``
(the model against what people kept), ``review`` (the yes/no loop), ``serve`` (the ML backend,
project connect), ``project`` (create, show), ``servers`` (labelstudio, server, demo) and
``catalog`` (models, samples, version). Below them: options written once in ``options``, the
checks before work in ``checks``, flow runs in ``runs``, exit codes in ``exits``, the garbage
collector paused while modules load in ``collector``.
"""

from __future__ import annotations

from prelabel_cli.collector import collector_paused, one_command_process

__all__ = ["main"]


def main() -> None:
    """The ``prelabel`` command: the app loaded with the garbage collector paused, then run."""
    one_command_process()
    with collector_paused():
        from prelabel_cli.app import main as run_app

    run_app()


if __name__ == "__main__":
    main()
