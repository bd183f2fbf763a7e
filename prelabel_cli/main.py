"""``prelabel``: the command-line entry point (``prelabel_cli.main:main``).

The app and its error boundary live in ``app``; options written once in ``options``;
the commands by topic in ``predict`` (run, post, infer, convert), ``data`` (ingest,
export, pull), ``quality`` (the model against what people kept), ``servers`` (labelstudio,
demo) and ``catalog`` (models, samples, version).
"""

from __future__ import annotations

from prelabel_cli.app import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
