"""The documentation's reference pages, generated from the code so that they cannot drift.

Four pages: every command and option (from the Typer app), every flow's parameters (from
their pydantic models), the settings and their environment variables
(``prelabel.core.settings.Settings``), and the labeling-config tags prelabel fills and reads.
``python -m prelabel_cli.reference`` (``bash scripts/reference``) writes them into
``docs/reference``; a test fails when the committed pages differ from what this makes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prelabel.core.atomic import atomic_write
from prelabel_cli.reference.cli import cli_page
from prelabel_cli.reference.flows import flows_page
from prelabel_cli.reference.settings import settings_page
from prelabel_cli.reference.tags import tags_page

__all__ = ["FOLDER", "pages", "write_pages"]

FOLDER = Path("docs") / "reference"

_PAGES: dict[str, Callable[[], str]] = {
    "cli.md": cli_page,
    "flows.md": flows_page,
    "settings.md": settings_page,
    "label-config.md": tags_page,
}


def pages() -> dict[str, str]:
    """File name -> the page's Markdown, as the code is now."""
    return {name: make() for name, make in _PAGES.items()}


def write_pages(folder: Path = FOLDER) -> list[Path]:
    """Write every page into ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in pages().items():
        atomic_write(folder / name, text)
        written.append(folder / name)
    return written
