"""Weights found on this machine, never fetched: a local folder or the Hugging Face cache.

Why: some checkpoints are gated (SAM 3: users accept a licence and download with their own
token), and a run that starts a multi-gigabyte download by itself, or fails deep inside a
flow with a hub error, helps no one. So a hub id is looked up in the local cache only, and
when the weights are absent one line says how to fetch them and where they were looked for.

The revision that goes into the cache key is what the files are: the hub commit the cache
holds for a hub id, or for a folder a digest of its files (hashed once per process; about
a second per gigabyte), so new weights in the same folder never reuse old predictions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from prelabel.core.errors import SettingsError

__all__ = ["LocalCheckpoint", "locate_checkpoint"]

_CHUNK = 8 << 20


@dataclass
class LocalCheckpoint:
    """A checkpoint's files on this machine: ``path`` is the folder to load from."""

    name: str  # as the user gave it: a hub id or a folder
    path: Path
    commit: str | None = None  # the hub commit, for a hub id
    _digest: str | None = field(default=None, repr=False)

    @property
    def revision(self) -> str:
        """``<hub id>@<commit>``, or for a folder ``sha256:<digest of its file names and bytes>``
        (where the folder is does not matter: the same files give the same revision)."""
        if self.commit is not None:
            return f"{self.name}@{self.commit}"
        if self._digest is None:
            digest = hashlib.sha256()
            for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
                digest.update(file.relative_to(self.path).as_posix().encode() + b"\0")
                with file.open("rb") as handle:
                    while block := handle.read(_CHUNK):
                        digest.update(block)
            self._digest = f"sha256:{digest.hexdigest()[:32]}"
        return self._digest


def locate_checkpoint(model: str, checkpoint: str, revision: str | None, fetch: str) -> LocalCheckpoint:
    """A folder holding ``config.json``, or the cached snapshot of a hub id at ``revision``.

    ``fetch`` says how to get the weights (``hf download ...``); it ends the one-line error
    raised when they are not here.
    """
    folder = Path(checkpoint).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise SettingsError(f"{model}: {folder} has no config.json: not a checkpoint folder")
        return LocalCheckpoint(checkpoint, folder.resolve())
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    found = None
    if checkpoint.count("/") == 1:  # a hub id: owner/name
        found = try_to_load_from_cache(checkpoint, "config.json", revision=revision)
    if not isinstance(found, str):
        raise SettingsError(
            f"{model}: no weights for {checkpoint!r} (looked in that folder and in the Hugging Face cache "
            f"{HF_HUB_CACHE}; nothing is downloaded for you): {fetch}"
        )
    snapshot = Path(found).parent
    return LocalCheckpoint(checkpoint, snapshot, commit=snapshot.name)
