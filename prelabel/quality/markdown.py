"""Quality reports as markdown (the command line's output, Prefect's artifacts): cells and names."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["cell", "text"]

_MARKUP = re.compile(r"([\\`*_\[\]<>|#!])")
_BREAKS = re.compile(r"[\r\n\t]+")


def cell(value: Any) -> str:
    """A markdown table cell: n/a for undefined, three decimals, text through ``text``."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else text(str(value))


def text(value: str) -> str:
    """Names from the project (labels, controls, the model version) shown as the text they are:
    line breaks become spaces (a table row stays one line) and markdown's and HTML's
    characters are backslash-escaped (no table cell split by ``|``, no tag, link or code span)."""
    return _MARKUP.sub(r"\\\1", _BREAKS.sub(" ", value))
