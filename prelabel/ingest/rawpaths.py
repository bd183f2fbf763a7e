"""Where an image's raw prediction file lives: one rule for ``infer``, ``post`` and ``convert``.

``infer`` writes ``<out>/<the image's path relative to the input root>.prelabel.json``: the
input's folders mirrored and the whole file name kept, so ``a/x.jpg``, ``b/x.jpg`` and
``x.jpeg`` get three files. Without a root (a manifest of paths) the whole path is
mirrored; a URL or storage key mirrors its host or bucket and path.

Reading pairs an image with, in this order: that file (beside the image, or in the raw
folder); then the names the DINO-X scripts write, ``<stem>_dinox_preannot.json`` and
``<stem>.json``, beside the image, or in the raw folder's mirror of the image's folder,
or flat in the raw folder. A stem-named file serves one image only: when several images
of the input claim it (``x.jpg`` and ``x.png`` beside it; ``a/x.jpg`` and ``b/x.jpg`` for a
flat raw folder) the pairing is ambiguous and raises ``PredictionFileError`` naming the
file and its claimants, which the failure path turns into an error row: never a silent pick.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from prelabel.core.errors import PredictionFileError
from prelabel.ingest.sources import IMAGE_SUFFIXES, iter_image_files

__all__ = ["LEGACY_SUFFIXES", "RAW_SUFFIX", "RawFileRule", "raw_file_for", "raw_file_key", "raw_file_path"]

RAW_SUFFIX = ".prelabel.json"
LEGACY_SUFFIXES = ("_dinox_preannot.json", ".json")


def raw_file_key(image: str | Path, input_root: Path | None = None) -> PurePosixPath:
    """The image's relative place in a raw-file folder (its own name included).

    A local path under ``input_root``: the path relative to it. Any other local path: the
    whole absolute path without its anchor. A URL or storage key (``s3://b/k``): host or
    bucket, then the path, URL-decoded, without the query.
    """
    text = str(image)
    if _is_uri(text):
        parts = urlsplit(text)
        names = [p for p in unquote(parts.path).split("/") if p not in ("", ".", "..")]
        return PurePosixPath(parts.netloc, *names)
    absolute = _absolute(text)
    if input_root is not None:
        root = _absolute(input_root)
        if absolute.is_relative_to(root):
            return PurePosixPath(absolute.relative_to(root).as_posix())
    return PurePosixPath(*absolute.parts[1:])


def raw_file_path(image: str | Path, out: Path, input_root: Path | None = None) -> Path:
    """Where ``infer`` writes the raw file of ``image`` under ``out`` (the folders mirrored)."""
    key = raw_file_key(image, input_root)
    return out.joinpath(*key.parent.parts, key.name + RAW_SUFFIX)


class RawFileRule:
    """Pairs images with raw files in ``raw_dir`` (None: beside each image).

    ``input_root`` is the folder the images were listed from: it places an image's
    mirrored folder, and tells which images may claim a stem-named file lying flat in
    ``raw_dir`` (they are listed once, and only when such a file exists).
    """

    def __init__(self, raw_dir: Path | None = None, input_root: Path | None = None) -> None:
        self.raw_dir = raw_dir
        self.input_root = input_root
        self._tree: dict[str, list[Path]] | None = None  # stem -> images under input_root
        self._folders: dict[Path, dict[str, list[Path]]] = {}  # folder -> stem -> its images

    def find(self, image: Path) -> Path | None:
        """The raw file of ``image``, or None when it has none; ``PredictionFileError`` when
        the file it would use is claimed by several images."""
        key = raw_file_key(image, self.input_root)
        local = not _is_uri(str(image))
        if self.raw_dir is None:
            own, folders = image.parent / (image.name + RAW_SUFFIX), [(image.parent, "folder")]
        else:
            own = raw_file_path(image, self.raw_dir, self.input_root)
            mirror = self.raw_dir.joinpath(*key.parent.parts)
            folders = [(mirror, "folder"), (self.raw_dir, "flat")] if mirror != self.raw_dir else []
            folders = folders or [(self.raw_dir, "flat")]
        if own.is_file():
            return own
        stem = PurePosixPath(key.name).stem
        for folder, scope in folders:
            for suffix in LEGACY_SUFFIXES:
                candidate = folder / f"{stem}{suffix}"
                if not candidate.is_file():
                    continue
                claimants = self._claimants(image, stem, scope) if local else [image]
                others = sorted(str(p) for p in claimants if p != image)
                if others:
                    shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
                    raise PredictionFileError(
                        str(image),
                        f"ambiguous raw file {candidate}: {len(others)} other image(s) of the same stem "
                        f"claim it ({shown}); write {own.name} for each instead",
                    )
                return candidate
        return None

    def _claimants(self, image: Path, stem: str, scope: str) -> list[Path]:
        """Images that would read the same stem-named file as ``image`` (each folder and the
        input tree are listed once, so a large folder costs one listing, not one per image)."""
        if scope == "flat" and self.input_root is not None:
            if self._tree is None:
                self._tree = defaultdict(list)
                for path in iter_image_files(self.input_root):
                    self._tree[path.stem].append(path)
            found = self._tree.get(stem, [])
        else:
            folder = _absolute(image.parent)
            if folder not in self._folders:
                stems: dict[str, list[Path]] = defaultdict(list)
                with os.scandir(folder) as entries:
                    for entry in entries:
                        path = Path(entry.path)
                        if path.suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                            stems[path.stem].append(path)
                self._folders[folder] = stems
            found = self._folders[folder].get(stem, [])
        mine = _absolute(image)
        return [image, *(p for p in found if _absolute(p) != mine)]


def _absolute(path: str | Path) -> Path:
    """An absolute, normalised path; symbolic links are not followed."""
    return Path(os.path.normpath(Path(path).absolute()))


def _is_uri(text: str) -> bool:
    parts = urlsplit(text)
    return bool(parts.scheme and parts.netloc and len(parts.scheme) > 1)


def raw_file_for(image: Path, raw_dir: Path | None = None, input_root: Path | None = None) -> Path | None:
    """The raw prediction file of ``image`` by the one pairing rule (``RawFileRule``):
    ``<name>.prelabel.json`` as ``infer`` writes it, else ``<stem>_dinox_preannot.json`` or
    ``<stem>.json``, in ``raw_dir`` (default: beside the image); None when there is none.

    Raises ``PredictionFileError`` when the file is claimed by several images.
    """
    return RawFileRule(raw_dir, input_root).find(image)
