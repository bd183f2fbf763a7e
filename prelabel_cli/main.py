"""``prelabel``: the command-line entry point (``prelabel_cli.main:main``).

The app is built, and its error boundary lives, in ``app``, which imports the command modules
by topic: ``predict`` (run, post, infer, convert), ``data`` (ingest, export, pull), ``quality``
(the model against what people kept), ``review`` (the yes/no loop), ``serve`` (the ML backend,
project connect), ``project`` (create, show), ``servers`` (labelstudio, server, demo) and
``catalog`` (models, samples, version). Below them: options written once in ``options``, the
checks before work in ``checks``, flow runs in ``runs``, exit codes in ``exits``.
"""

from __future__ import annotations

from prelabel_cli.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
