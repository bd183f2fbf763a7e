"""Match image files to Label Studio tasks by normalised file name; never guess.

A task's image reference comes in many forms: uploads renamed by Label Studio
(``/data/upload/<project>/<8 hex>-<sanitised name>``), local files
(``/data/local-files/?d=<url-encoded path>``), cloud keys (``s3://``, ``gs://``,
``azure-blob://``) and plain or presigned ``https://`` URLs with query strings. Each is
reduced to the file name it points at, then both sides get the same key: Label Studio's
upload sanitising (Django's ``get_valid_filename``), Unicode NFC and case folding.

Exact keys match first. What is left may match by fuzzy similarity (rapidfuzz) above a
cutoff *and* ahead of the runner-up by a margin. Duplicate names on either side, close
runners-up and tasks claimed twice are reported as ambiguous with a reason, never guessed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlparse

from rapidfuzz import fuzz, process

__all__ = ["Match", "MatchResult", "Unmatched", "match_files", "name_key", "task_file_name"]

_UPLOAD = re.compile(r"^/?data/upload/\d+/(?:[0-9a-f]{8}-)?(?P<name>[^/]+)$")
_NOT_FILENAME_SAFE = re.compile(r"[^-\w.]")
_REFERENCE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|/data/(?:upload|local-files)/)", re.IGNORECASE)


def task_file_name(reference: str) -> str:
    """The file name a task's image reference points at, without Label Studio's prefix."""
    ref = reference.strip()
    parsed = urlparse(ref)
    if parsed.path.rstrip("/").endswith("/data/local-files") or parsed.path == "/data/local-files/":
        inner = parse_qs(parsed.query).get("d", [""])[0]
        return inner.replace("\\", "/").rsplit("/", 1)[-1]
    upload = _UPLOAD.match(unquote(parsed.path))
    if upload:
        return upload.group("name")
    path = unquote(parsed.path) if parsed.scheme or parsed.netloc else unquote(ref.split("?", 1)[0])
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _own_name(item: str) -> str:
    """The file name of a local path, or of a URL / storage key given as an image."""
    if _REFERENCE.match(item):
        return task_file_name(item)
    return item.replace("\\", "/").rsplit("/", 1)[-1]


def name_key(name: str) -> str:
    """Compare-key of a file name: sanitised as Label Studio's upload does, NFC, casefolded."""
    text = unicodedata.normalize("NFC", unquote(name)).strip().replace(" ", "_")
    return _NOT_FILENAME_SAFE.sub("", text).casefold()


@dataclass(frozen=True, slots=True)
class Match:
    """A file paired with a task: ``how`` is "exact" or "fuzzy" (with its score, 0-100)."""

    file: str
    task_id: int
    how: str
    score: float = 100.0


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A file or task left unpaired, and why."""

    name: str
    reason: str
    task_id: int | None = None


@dataclass
class MatchResult:
    """Pairs, and every file and task left out with its reason."""

    matches: list[Match] = field(default_factory=list)
    unmatched_files: list[Unmatched] = field(default_factory=list)
    unmatched_tasks: list[Unmatched] = field(default_factory=list)


def match_files(
    files: Sequence[str],
    tasks: Iterable[tuple[int, str]],
    *,
    fuzzy_cutoff: float = 90.0,
    fuzzy_margin: float = 5.0,
    fuzzy: bool = True,
) -> MatchResult:
    """Pair files (names, paths, or URLs / storage keys) with tasks (task id, image reference).

    ``fuzzy_cutoff`` is the least rapidfuzz ratio (0-100) a fuzzy pair needs, and
    ``fuzzy_margin`` how far it must lead the next candidate.
    """
    result = MatchResult()
    files_by_key: dict[str, list[str]] = defaultdict(list)
    for file in files:
        files_by_key[name_key(_own_name(file))].append(file)
    tasks_by_key: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for task_id, reference in tasks:
        tasks_by_key[name_key(task_file_name(reference))].append((task_id, reference))

    open_files: dict[str, str] = {}  # key -> file, unique keys without an exact partner
    for key, same_files in files_by_key.items():
        same_tasks = tasks_by_key.get(key, [])
        if len(same_files) > 1:
            reason = f"ambiguous: {len(same_files)} files share the name"
            result.unmatched_files.extend(Unmatched(file, reason) for file in same_files)
            continue
        if len(same_tasks) > 1:
            ids = ", ".join(str(t) for t, _ in same_tasks)
            result.unmatched_files.append(Unmatched(same_files[0], f"ambiguous: tasks {ids} share the name"))
            continue
        if same_tasks:
            result.matches.append(Match(same_files[0], same_tasks[0][0], "exact"))
        else:
            open_files[key] = same_files[0]

    open_tasks: dict[str, tuple[int, str]] = {}
    for key, same_tasks in tasks_by_key.items():
        same_files = files_by_key.get(key, [])
        if len(same_tasks) > 1:
            reason = f"ambiguous: {len(same_tasks)} tasks share the name"
            result.unmatched_tasks.extend(Unmatched(ref, reason, task_id) for task_id, ref in same_tasks)
        elif len(same_files) > 1:
            task_id, ref = same_tasks[0]
            reason = f"ambiguous: {len(same_files)} files share the name"
            result.unmatched_tasks.append(Unmatched(ref, reason, task_id))
        elif not same_files:
            open_tasks[key] = same_tasks[0]

    if fuzzy and open_files and open_tasks:
        _fuzzy(open_files, open_tasks, result, fuzzy_cutoff, fuzzy_margin)
    else:
        result.unmatched_files.extend(Unmatched(f, "no task with this name") for f in open_files.values())
        result.unmatched_tasks.extend(
            Unmatched(ref, "no file with this name", task_id) for task_id, ref in open_tasks.values()
        )
    return result


def _fuzzy(
    open_files: dict[str, str],
    open_tasks: dict[str, tuple[int, str]],
    result: MatchResult,
    cutoff: float,
    margin: float,
) -> None:
    task_keys = list(open_tasks)
    claims: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for key, file in open_files.items():
        found = process.extract(key, task_keys, scorer=fuzz.ratio, limit=2, score_cutoff=cutoff)
        if not found:
            result.unmatched_files.append(Unmatched(file, "no task with this name"))
            continue
        best_key, best, _ = found[0]
        if len(found) > 1 and best - found[1][1] < margin:
            a, b = open_tasks[best_key][0], open_tasks[found[1][0]][0]
            reason = f"ambiguous: tasks {a} and {b} are equally close ({best:.0f} vs {found[1][1]:.0f})"
            result.unmatched_files.append(Unmatched(file, reason))
            continue
        claims[best_key].append((file, best))
    for key, (task_id, ref) in open_tasks.items():
        claimants = claims.get(key, [])
        if len(claimants) == 1:
            file, score = claimants[0]
            result.matches.append(Match(file, task_id, "fuzzy", score))
        elif claimants:
            names = ", ".join(f for f, _ in claimants)
            reason = f"ambiguous: several files are close ({names})"
            result.unmatched_tasks.append(Unmatched(ref, reason, task_id))
            result.unmatched_files.extend(
                Unmatched(f, f"ambiguous: task {task_id} is as close to other files") for f, _ in claimants
            )
        else:
            result.unmatched_tasks.append(Unmatched(ref, "no file with this name", task_id))
