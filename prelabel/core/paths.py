"""Paths built from names a source chose: made safe, and kept under their root.

A file name from a URL, a task or a video (``../../x``, an empty path with ``../`` in its
query, a name with a NUL) must never write outside the folder it is meant for.
"""

from __future__ import annotations

import re
from pathlib import Path

from prelabel.core.errors import SourceError

__all__ = ["safe_file_name", "within"]

_UNSAFE = re.compile(r"[^-\w.]+")


def safe_file_name(name: str, max_length: int = 120) -> str:
    """A file name from any string: last path part, safe characters, never hidden or empty."""
    last = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", last).lstrip(".")
    return cleaned[:max_length] or "unnamed"


def within(root: Path, target: Path) -> Path:
    """``target`` resolved, when it lies under ``root``; else a ``SourceError`` (nothing written)."""
    base, resolved = root.resolve(), target.resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise SourceError(f"refusing to write {target}: outside {root}")
    return resolved
