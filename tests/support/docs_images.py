"""Pictures for the documentation, taken by the tests that check what they show.

``scripts/screenshots`` runs those tests with ``PRELABEL_SCREENSHOTS=docs/img``; otherwise
nothing is written, so the pictures in the docs are always ones a passing test took.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["docs_image"]


def docs_image(name: str) -> Path | None:
    """Where to save the picture ``name`` for the docs, or None when no folder was asked for."""
    folder = os.environ.get("PRELABEL_SCREENSHOTS")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder) / name
