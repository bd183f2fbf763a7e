"""Import images as new tasks, only those the project does not have yet, each once, each checked.

Local files are uploaded (Label Studio stores them under ``/data/upload/`` and renames
them); URLs and cloud keys (``s3://``, ``gs://``, ``https://`` ...) are referenced in the
task data as they are. Whether an image is already in the project is decided by the same
name matching as everywhere else; an ambiguous name is reported and not imported.

Nothing broken becomes a task: every local file is read and decoded whole (within the
pixel budget, so a truncated JPEG or a decompression bomb shows) and its extension checked
against what Label Studio's upload accepts, before anything is sent. A file that fails is
one error row; so is a file Label Studio still refuses (the chunk it was in is sent again
one file at a time, after the project is listed to find what the refused request stored).
Upload names are sent in Unicode NFC: Label Studio's sanitising drops the combining marks of
a decomposed name (``café`` written by macOS), which would never match the file again.

An import that fails after it was sent (``AmbiguousWriteError``) may have created its
tasks, so it is never repeated as it was: the project's tasks are listed again and only
the images still without a task are imported.

``task_data`` adds fields (manifest columns) to each new task's data. Local files then go
in two steps: uploaded without making tasks, then tasks created by JSON import that
reference the uploaded files, so the data manager can filter on those fields.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from prelabel.core.errors import (
    AmbiguousWriteError,
    ImageError,
    LabelStudioError,
    LabelStudioUnavailableError,
    PrelabelError,
)
from prelabel.core.failures import ErrorRow, Stage, failure_row
from prelabel.core.images import DEFAULT_MAX_PIXELS, check_image
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.matching import Unmatched, match_files

__all__ = ["UPLOAD_EXTENSIONS", "ImportReport", "import_images", "is_remote"]

_REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "azure-blob://")
_LABEL_STUDIO_FILES = ("/data/upload/", "/data/local-files/")
_NEW = "no task with this name"

UPLOAD_EXTENSIONS = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp"})
"""The image extensions Label Studio 1.23's upload accepts (its ``SUPPORTED_EXTENSIONS``, less
SVG, which no model here reads); it refuses the whole request for any other."""


def is_remote(image: str) -> bool:
    """True for a URL, a storage key or a Label Studio file reference that a task can name
    without uploading. A file that exists on this machine is uploaded, also under ``/data``
    (where the compose workers keep images)."""
    if image.startswith(_REMOTE_SCHEMES):
        return True
    return image.startswith(_LABEL_STUDIO_FILES) and not Path(image).is_file()


@dataclass
class ImportReport:
    """New tasks by image, images already present, images left out as ambiguous, and files
    refused (by the checks or by Label Studio) as error rows.

    ``recovered`` counts images whose task was found after an ambiguous failure (they are
    in ``created`` too). ``planned`` lists, in a dry run, the images that would be imported.
    """

    created: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    ambiguous: list[Unmatched] = field(default_factory=list)
    refused: list[ErrorRow] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    recovered: int = 0


def import_images(
    client: LabelStudioClient,
    project_id: int,
    data_key: str,
    images: Sequence[str],
    tasks: Sequence[Task],
    *,
    batch_size: int = 50,
    max_rounds: int = 3,
    task_data: Mapping[str, Mapping[str, str]] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    dry_run: bool = False,
    check: Callable[[str, int], PrelabelError | None] | None = None,
) -> ImportReport:
    """Create a task for every image in ``images`` that no task in ``tasks`` already holds.

    ``max_rounds`` bounds the imports of one batch after ambiguous failures (each preceded
    by a fresh listing of the project); the last failure is raised. ``dry_run`` checks the
    files and lists what would be imported in ``planned``, and sends nothing. ``check`` says
    why a local file cannot become a task (default: the image checks; videos have their own).
    """
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    report = ImportReport()
    known = match_files(images, [(t.id, t.image_ref(data_key)) for t in tasks], fuzzy=False, stem=False)
    report.present = {m.file: m.task_id for m in known.matches}
    new = [u.name for u in known.unmatched_files if u.reason == _NEW]
    report.ambiguous = [u for u in known.unmatched_files if u.reason != _NEW]
    new = _checked(new, max_pixels, report.refused, check or _problem)
    if dry_run:
        report.planned = new
        return report

    remote = [image for image in new if is_remote(image)]
    local = [image for image in new if not is_remote(image)]
    uploads: list[tuple[list[str], list[int]]] = []  # (files of one upload, the task ids it answered)
    batch = _Batch(client, project_id, data_key, report, max_rounds)
    for chunk in _chunks(remote if task_data is None else new, batch_size):
        batch.send(chunk, lambda pending: batch.json_tasks(pending, task_data))
    for chunk in _chunks(local if task_data is None else [], batch_size):
        batch.send(chunk, lambda pending: uploads.append((pending, batch.upload(pending))))
    fresh = [task_id for _, ids in uploads for task_id in ids]
    if fresh:
        # Uploads are renamed by Label Studio: map them back by name, as for any task.
        names = [name for files, _ in uploads for name in files]
        new_tasks = [(t.id, t.image_ref(data_key)) for t in client.iter_tasks(project_id, ids=fresh)]
        mapped = match_files(names, new_tasks, stem=False)
        report.created.update({m.file: m.task_id for m in mapped.matches})
    return report


def _checked(
    images: Sequence[str],
    max_pixels: int,
    refused: list[ErrorRow],
    check: Callable[[str, int], PrelabelError | None],
) -> list[str]:
    """The images fit to become tasks; each local file read and decoded whole (in threads:
    decoding releases the GIL), each failure a row in ``refused``."""
    local = [image for image in images if not is_remote(image)]
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        problems = dict(zip(local, pool.map(lambda path: check(path, max_pixels), local), strict=True))
    for image, problem in problems.items():
        if problem is not None:
            refused.append(failure_row(image, Stage.IMPORT, problem))
    return [image for image in images if problems.get(image) is None]


def _problem(path: str, max_pixels: int) -> PrelabelError | None:
    extension = Path(path).suffix.lower()
    if extension not in UPLOAD_EXTENSIONS:
        accepted, kind = ", ".join(sorted(UPLOAD_EXTENSIONS)), extension or "files without an extension"
        advice = "convert it, or serve it from storage"
        return ImageError(
            path, f"Label Studio does not accept {kind} uploads (it takes {accepted}): {advice}"
        )
    try:
        check_image(Path(path), path, max_pixels)
    except ImageError as exc:
        return exc
    return None


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


@dataclass
class _Batch:
    """Sends chunks of one import, recovering from ambiguous failures and refusals."""

    client: LabelStudioClient
    project_id: int
    data_key: str
    report: ImportReport
    max_rounds: int

    def send(self, chunk: list[str], create: Callable[[list[str]], object]) -> None:
        """``create`` one chunk; after a failure, list the project again and create only what is
        still missing, one image at a time (a file that breaks its request is found that way).
        An image Label Studio refuses, or that still fails after ``max_rounds``, is an error row."""
        pending = chunk
        for round_ in range(1, self.max_rounds + 1):
            try:
                create(pending)
                return
            except AmbiguousWriteError as exc:
                tries = f"{exc.detail} on each of {round_} tries; not imported"
                failure, final = LabelStudioError(exc.method, exc.url, None, tries), round_ == self.max_rounds
            except LabelStudioError as exc:
                if isinstance(exc, LabelStudioUnavailableError) or exc.status is None or exc.status >= 500:
                    raise
                failure, final = LabelStudioError(exc.method, exc.url, exc.status, exc.detail), True
            pending = self._still_missing(pending)  # a failed request may have stored some
            if len(pending) > 1:
                for image in pending:
                    self.send([image], create)
                return
            if pending and final:
                self.report.refused.append(failure_row(pending[0], Stage.IMPORT, failure))
            if not pending or final:
                return

    def _still_missing(self, pending: list[str]) -> list[str]:
        listing = [(t.id, t.image_ref(self.data_key)) for t in self.client.iter_tasks(self.project_id)]
        found = match_files(pending, listing, stem=False)
        self.report.created.update({m.file: m.task_id for m in found.matches})
        self.report.recovered += len(found.matches)
        self.report.ambiguous += [u for u in found.unmatched_files if u.reason != _NEW]
        return [u.name for u in found.unmatched_files if u.reason == _NEW]

    def upload(self, files: list[str]) -> list[int]:
        return self.client.upload_files(self.project_id, [Path(p) for p in files])

    def json_tasks(self, images: list[str], extra: Mapping[str, Mapping[str, str]] | None) -> None:
        refs = self._refs(images) if extra is not None else images
        data = [
            {**(extra or {}).get(image, {}), self.data_key: ref}
            for image, ref in zip(images, refs, strict=True)
        ]
        ids = self.client.import_tasks(self.project_id, [{"data": item} for item in data])
        self.report.created.update(zip(images, ids, strict=True))

    def _refs(self, images: Sequence[str]) -> list[str]:
        """Each image's task reference: remote ones as they are, local files uploaded first
        (without tasks; an upload repeated after a failure only leaves an unused file)."""
        local = [image for image in images if not is_remote(image)]
        uploaded = (
            self.client.upload_files(self.project_id, [Path(p) for p in local], commit=False) if local else []
        )
        refs = dict(
            zip(local, self.client.file_upload_refs(self.project_id, uploaded) if local else [], strict=True)
        )
        return [refs.get(image, image) for image in images]
