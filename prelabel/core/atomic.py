"""The one atomic file write: a unique temp file beside the target, then ``os.replace``.

Readers see the old file or the new one, never half of either; two writers of the same
file never share a temp name (``mkstemp``), so neither can rename the other's half-written
bytes into place. It lives in the core because every layer writes files whole (records,
Label Studio pull-back, the stores, reports); ``prelabel.store`` re-exports it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_path",
    "atomic_write",
    "atomic_write_csv",
    "atomic_writer",
    "csv_cell",
    "csv_value",
    "write_csv_rows",
]

# mkstemp makes 0600 files; a file written whole gets the mode open() would have given it.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """A fresh temp file beside ``path`` (for writers that need a path, such as SQLite); it
    replaces ``path`` when the block ends without an error, and is removed otherwise.

    ``mode`` sets the file's permissions (``0o600`` for a file holding secrets); by default
    the umask decides, as for ``open``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK if mode is None else mode)
        os.close(fd)
        yield Path(tmp)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: int | None = None) -> Iterator[io.BufferedWriter]:
    """A binary handle whose bytes replace ``path`` when the block ends without an error."""
    with atomic_path(path, mode) as tmp, tmp.open("wb") as handle:
        yield handle


def atomic_write(path: str | Path, content: bytes | str, mode: int | None = None) -> None:
    """Replace ``path`` with ``content`` (text is written as UTF-8)."""
    with atomic_writer(path, mode) as handle:
        handle.write(content.encode("utf-8") if isinstance(content, str) else content)


def atomic_write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Replace ``path`` with a CSV file: the header, then the rows (text cells escaped)."""
    with atomic_writer(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        write_csv_rows(text, [header], rows)


def write_csv_rows(handle: IO[str], *tables: Iterable[Sequence[Any]]) -> None:
    """Rows to an open text handle, every text cell through ``csv_cell``."""
    writer = csv.writer(handle)
    for rows in tables:
        writer.writerows([csv_cell(cell) for cell in row] for row in rows)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet will not run: one starting with ``= + - @``, tab or CR gets a
    leading ``'`` (OWASP's advice). Numbers are left alone; ``csv_value`` undoes it."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_value(cell: str) -> str:
    """A cell as written before ``csv_cell`` escaped it (files prelabel reads back)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell
