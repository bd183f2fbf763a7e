"""Import images as new tasks, only those the project does not have yet.

Local files are uploaded (Label Studio stores them under ``/data/upload/`` and renames
them); URLs and cloud keys (``s3://``, ``gs://``, ``https://`` ...) are referenced in the
task data as they are. Whether an image is already in the project is decided by the same
name matching as everywhere else; an ambiguous name is reported and not imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.matching import Unmatched, match_files

__all__ = ["ImportReport", "import_images", "is_remote"]

_REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://", "azure-blob://", "/data/")


def is_remote(image: str) -> bool:
    """True for a URL or storage key that a task can reference without uploading."""
    return image.startswith(_REMOTE_SCHEMES)


@dataclass
class ImportReport:
    """New tasks by image, images already present, and images left out as ambiguous."""

    created: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    ambiguous: list[Unmatched] = field(default_factory=list)


def import_images(
    client: LabelStudioClient,
    project_id: int,
    data_key: str,
    images: Sequence[str],
    tasks: Sequence[Task],
    *,
    batch_size: int = 50,
) -> ImportReport:
    """Create a task for every image in ``images`` that no task in ``tasks`` already holds."""
    report = ImportReport()
    known = match_files(images, [(t.id, t.image_ref(data_key)) for t in tasks], fuzzy=False, stem=False)
    report.present = {m.file: m.task_id for m in known.matches}
    new = [u.name for u in known.unmatched_files if u.reason == "no task with this name"]
    report.ambiguous = [u for u in known.unmatched_files if u.reason != "no task with this name"]

    remote = [image for image in new if is_remote(image)]
    for start in range(0, len(remote), batch_size):
        chunk = remote[start : start + batch_size]
        ids = client.import_tasks(project_id, [{"data": {data_key: ref}} for ref in chunk])
        report.created.update(zip(chunk, ids, strict=True))

    local = [image for image in new if not is_remote(image)]
    uploaded: list[int] = []
    for start in range(0, len(local), batch_size):
        uploaded += client.upload_files(project_id, [Path(p) for p in local[start : start + batch_size]])
    if uploaded:
        # Uploads are renamed by Label Studio: map them back by name, as for any task.
        fresh = set(uploaded)
        new_tasks = [(t.id, t.image_ref(data_key)) for t in client.iter_tasks(project_id) if t.id in fresh]
        mapped = match_files(local, new_tasks, stem=False)
        report.created.update({m.file: m.task_id for m in mapped.matches})
    return report
