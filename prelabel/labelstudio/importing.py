"""Import images as new tasks, only those the project does not have yet, each once.

Local files are uploaded (Label Studio stores them under ``/data/upload/`` and renames
them); URLs and cloud keys (``s3://``, ``gs://``, ``https://`` ...) are referenced in the
task data as they are. Whether an image is already in the project is decided by the same
name matching as everywhere else; an ambiguous name is reported and not imported.

An import that fails after it was sent (``AmbiguousWriteError``) may have created its
tasks, so it is never repeated as it was: the project's tasks are listed again and only
the images still without a task are imported.

``task_data`` adds fields (manifest columns) to each new task's data. Local files then go
in two steps: uploaded without making tasks, then tasks created by JSON import that
reference the uploaded files, so the data manager can filter on those fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prelabel.errors import AmbiguousWriteError
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.matching import Unmatched, match_files

__all__ = ["ImportReport", "import_images", "is_remote"]

_REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "azure-blob://")
_LABEL_STUDIO_FILES = ("/data/upload/", "/data/local-files/")
_NEW = "no task with this name"


def is_remote(image: str) -> bool:
    """True for a URL, a storage key or a Label Studio file reference that a task can name
    without uploading. A file that exists on this machine is uploaded, also under ``/data``
    (where the compose workers keep images)."""
    if image.startswith(_REMOTE_SCHEMES):
        return True
    return image.startswith(_LABEL_STUDIO_FILES) and not Path(image).is_file()


@dataclass
class ImportReport:
    """New tasks by image, images already present, and images left out as ambiguous.

    ``recovered`` counts images whose task was found after an ambiguous failure (they are
    in ``created`` too).
    """

    created: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    ambiguous: list[Unmatched] = field(default_factory=list)
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
) -> ImportReport:
    """Create a task for every image in ``images`` that no task in ``tasks`` already holds.

    ``max_rounds`` bounds the imports of one batch after ambiguous failures (each preceded
    by a fresh listing of the project); the last failure is raised.
    """
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    report = ImportReport()
    known = match_files(images, [(t.id, t.image_ref(data_key)) for t in tasks], fuzzy=False, stem=False)
    report.present = {m.file: m.task_id for m in known.matches}
    new = [u.name for u in known.unmatched_files if u.reason == _NEW]
    report.ambiguous = [u for u in known.unmatched_files if u.reason != _NEW]

    remote = [image for image in new if is_remote(image)]
    local = [image for image in new if not is_remote(image)]
    uploads: list[tuple[list[str], list[int]]] = []  # (files of one upload, the task ids it answered)
    for chunk in _chunks(remote if task_data is None else new, batch_size):
        _import_chunk(client, project_id, data_key, chunk, report, max_rounds, uploads=None, extra=task_data)
    for chunk in _chunks(local if task_data is None else [], batch_size):
        _import_chunk(client, project_id, data_key, chunk, report, max_rounds, uploads=uploads)
    fresh = [task_id for _, ids in uploads for task_id in ids]
    if fresh:
        # Uploads are renamed by Label Studio: map them back by name, as for any task.
        names = [name for batch, _ in uploads for name in batch]
        new_tasks = [(t.id, t.image_ref(data_key)) for t in client.iter_tasks(project_id, ids=fresh)]
        mapped = match_files(names, new_tasks, stem=False)
        report.created.update({m.file: m.task_id for m in mapped.matches})
    return report


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def _import_chunk(
    client: LabelStudioClient,
    project_id: int,
    data_key: str,
    chunk: list[str],
    report: ImportReport,
    max_rounds: int,
    *,
    uploads: list[tuple[list[str], list[int]]] | None,
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Import one batch (JSON tasks, or uploads when ``uploads`` collects them); after an
    ambiguous failure, list the project again and import only what is still missing."""
    pending = chunk
    for round_ in range(1, max_rounds + 1):
        if not pending:
            return
        try:
            if uploads is None:
                refs = _refs(client, project_id, pending) if extra is not None else pending
                data = [
                    {**(extra or {}).get(image, {}), data_key: ref}
                    for image, ref in zip(pending, refs, strict=True)
                ]
                ids = client.import_tasks(project_id, [{"data": item} for item in data])
                report.created.update(zip(pending, ids, strict=True))
            else:
                uploads.append((pending, client.upload_files(project_id, [Path(p) for p in pending])))
            return
        except AmbiguousWriteError:
            if round_ == max_rounds:
                raise
            listing = [(t.id, t.image_ref(data_key)) for t in client.iter_tasks(project_id)]
            found = match_files(pending, listing, stem=False)
            report.created.update({m.file: m.task_id for m in found.matches})
            report.recovered += len(found.matches)
            pending = [u.name for u in found.unmatched_files if u.reason == _NEW]
            report.ambiguous += [u for u in found.unmatched_files if u.reason != _NEW]


def _refs(client: LabelStudioClient, project_id: int, images: Sequence[str]) -> list[str]:
    """Each image's task reference: remote ones as they are, local files uploaded first
    (without tasks; an upload repeated after a failure only leaves an unused file)."""
    local = [image for image in images if not is_remote(image)]
    uploaded = client.upload_files(project_id, [Path(p) for p in local], commit=False) if local else []
    refs = dict(zip(local, client.file_upload_refs(project_id, uploaded) if local else [], strict=True))
    return [refs.get(image, image) for image in images]
