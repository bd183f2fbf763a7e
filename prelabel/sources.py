"""Local image files and the raw prediction files that sit beside them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prelabel.errors import SourceError

__all__ = ["IMAGE_SUFFIXES", "iter_image_files", "raw_file_for"]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".jfif", ".mpo"}
)
_RAW_SUFFIXES = ("_dinox_preannot.json", ".json")


def iter_image_files(root: str | Path, recursive: bool = True) -> Iterator[Path]:
    """Image files under ``root`` in sorted order, by extension (case-insensitive).

    Hidden and system files (``.name``, macOS ``._name``) are skipped, and so are
    symbolic links that point outside ``root``.
    """
    base = Path(root)
    if not base.is_dir():
        raise SourceError(f"{base}: not a directory")
    resolved_root = base.resolve()
    candidates = base.rglob("*") if recursive else base.glob("*")
    for path in sorted(candidates):
        relative = path.relative_to(base)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(resolved_root):
            continue
        yield path


def raw_file_for(image: Path, raw_dir: Path | None = None) -> Path | None:
    """The raw prediction file of ``image``: ``<stem>_dinox_preannot.json`` or ``<stem>.json``.

    Looked up in ``raw_dir`` (default: beside the image); None when there is none.
    """
    folder = raw_dir if raw_dir is not None else image.parent
    for suffix in _RAW_SUFFIXES:
        candidate = folder / f"{image.stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None
