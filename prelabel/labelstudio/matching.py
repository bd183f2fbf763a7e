"""Match image files to Label Studio tasks by normalised file name; never guess.

A task's image reference comes in many forms: uploads renamed by Label Studio
(``/data/upload/<project>/<8 hex>-<sanitised name>``), local files
(``/data/local-files/?d=<url-encoded path>``), cloud keys (``s3://``, ``gs://``,
``azure-blob://``) and plain or presigned ``https://`` URLs with query strings. Each is
reduced to the file name it points at, then both sides get the same key: Label Studio's
upload sanitising (Django's ``get_valid_filename``), Unicode NFC and case folding.

Exact keys match first, then the same name with another extension (``.jpeg``/``.jpg``).
Only when asked (``fuzzy=True``, the ``--fuzzy`` option) may what is left match by fuzzy
similarity (rapidfuzz) above a cutoff *and* ahead of the runner-up by a margin, and never
between names whose digit runs differ: ``img_0100.jpg`` and ``img_0101.jpg`` score 92 but
are different images. Each fuzzy pair carries its score, for the matches report
(``write_matches_report``) a person can check. Duplicate names on either side, close
runners-up and tasks claimed twice are reported as ambiguous with a reason, never guessed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from rapidfuzz import fuzz, process

from prelabel.core.atomic import atomic_write_csv

__all__ = [
    "MATCHES_REPORT_COLUMNS",
    "Match",
    "MatchResult",
    "Unmatched",
    "digit_runs",
    "match_files",
    "matches_report_rows",
    "name_key",
    "task_file_name",
    "write_matches_report",
]

MATCHES_REPORT_COLUMNS = ("file", "task_id", "task_image", "how", "score")
_DIGITS = re.compile(r"[0-9]+")

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
_NOT_FILENAME_SAFE = re.compile(r"[^-\w.]")
_REFERENCE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|/data/(?:upload|local-files)/)", re.IGNORECASE)


def task_file_name(reference: str) -> str:
    """The file name a task's image reference points at, without Label Studio's prefix."""
    ref = reference.strip()
    if "\\" in ref:
        ref = ref.replace("\\", "/")
    if "?" not in ref and "#" not in ref:  # the common case, kept cheap: 100k names in well under 1 s
        name = ref.rstrip("/").rsplit("/", 1)[-1]
        if "%" in name:
            name = unquote(name)
        if "/data/upload/" in ref:
            name = _UPLOAD_PREFIX.sub("", name, count=1)
        return name
    parsed = urlparse(ref)
    if parsed.path.rstrip("/").endswith("/data/local-files"):
        inner = parse_qs(parsed.query).get("d", [""])[0]
        return inner.replace("\\", "/").rsplit("/", 1)[-1]
    return task_file_name(parsed.path) if parsed.path else ""


def _own_name(item: str) -> str:
    """The file name of a local path, or of a URL / storage key given as an image."""
    if _REFERENCE.match(item):
        return task_file_name(item)
    return item.replace("\\", "/").rsplit("/", 1)[-1]


def name_key(name: str) -> str:
    """Compare-key of a file name: sanitised as Label Studio's upload does, NFC, casefolded."""
    if "%" in name:
        name = unquote(name)
    text = name.strip().replace(" ", "_")
    if text.isascii():
        return _NOT_FILENAME_SAFE.sub("", text).lower()
    return _NOT_FILENAME_SAFE.sub("", unicodedata.normalize("NFC", text)).casefold()


@dataclass(slots=True)
class Match:
    """A file paired with a task: ``how`` is "exact", "stem" (same name, other extension)
    or "fuzzy" (with its rapidfuzz score, 0-100)."""

    file: str
    task_id: int
    how: str
    score: float = 100.0
    task_image: str = ""


@dataclass(slots=True)
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

    @property
    def fuzzy(self) -> list[Match]:
        """The fuzzy pairs (each with its score): the ones a person should look at."""
        return [m for m in self.matches if m.how == "fuzzy"]


def match_files(
    files: Sequence[str],
    tasks: Iterable[tuple[int, str]],
    *,
    fuzzy_cutoff: float = 90.0,
    fuzzy_margin: float = 5.0,
    fuzzy: bool = False,
    stem: bool = True,
) -> MatchResult:
    """Pair files (names, paths, or URLs / storage keys) with tasks (task id, image reference).

    ``stem`` pairs the same name with another extension (unique on both sides). ``fuzzy``
    (off by default) adds similar names: ``fuzzy_cutoff`` is the least rapidfuzz ratio
    (0-100) a fuzzy pair needs, and ``fuzzy_margin`` how far it must lead the next
    candidate; names whose digit runs differ are never candidates.
    """
    result = MatchResult()
    task_list = list(tasks)
    file_keys = [name_key(_own_name(file)) for file in files]
    task_names = [task_file_name(reference) for _, reference in task_list]
    task_keys = [name_key(name) for name in task_names]
    file_count, task_count = Counter(file_keys), Counter(task_keys)
    shared: dict[str, list[int]] = defaultdict(list)  # only keys several tasks share
    unique_task: dict[str, tuple[int, str]] = {}  # key -> (task id, the file name it points at)
    for (task_id, _), name, key in zip(task_list, task_names, task_keys, strict=True):
        if task_count[key] > 1:
            shared[key].append(task_id)
        else:
            unique_task[key] = (task_id, name)

    open_files: dict[str, str] = {}  # key -> file, unique keys without an exact partner
    for file, key in zip(files, file_keys, strict=True):
        if file_count[key] > 1:
            result.unmatched_files.append(
                Unmatched(file, f"ambiguous: {file_count[key]} files share the name")
            )
        elif key in shared:
            ids = ", ".join(str(t) for t in shared[key])
            result.unmatched_files.append(Unmatched(file, f"ambiguous: tasks {ids} share the name"))
        elif key in unique_task:
            task_id, name = unique_task[key]
            result.matches.append(Match(file, task_id, "exact", task_image=name))
        else:
            open_files[key] = file

    open_tasks: dict[str, tuple[int, str]] = {}
    for (task_id, reference), key in zip(task_list, task_keys, strict=True):
        if task_count[key] > 1:
            reason = f"ambiguous: {task_count[key]} tasks share the name"
            result.unmatched_tasks.append(Unmatched(reference, reason, task_id))
        elif file_count[key] > 1:
            reason = f"ambiguous: {file_count[key]} files share the name"
            result.unmatched_tasks.append(Unmatched(reference, reason, task_id))
        elif not file_count[key]:
            open_tasks[key] = (task_id, reference)

    if stem and open_files and open_tasks:
        _same_stem(open_files, open_tasks, result)
    if fuzzy and open_files and open_tasks:
        _fuzzy(open_files, open_tasks, result, fuzzy_cutoff, fuzzy_margin)
        return result
    result.unmatched_files.extend(Unmatched(f, "no task with this name") for f in open_files.values())
    result.unmatched_tasks.extend(
        Unmatched(ref, "no file with this name", task_id) for task_id, ref in open_tasks.values()
    )
    return result


def digit_runs(name: str) -> tuple[str, ...]:
    """The runs of digits in a file name's stem, as written (``img_0100.jpg`` -> ``("0100",)``).

    Two names with different digit runs name different images (frame numbers, ids,
    dates), however similar they look, so fuzzy matching never pairs them.
    """
    return tuple(_DIGITS.findall(_stem(name)))


def matches_report_rows(result: MatchResult) -> list[tuple[str, int, str, str, float]]:
    """Rows (``MATCHES_REPORT_COLUMNS``) for every pair made other than by exact name:
    fuzzy pairs with their score (0-100), and same-name-other-extension pairs (100)."""
    pairs = [m for m in result.matches if m.how != "exact"]
    return [(m.file, m.task_id, m.task_image, m.how, round(m.score, 1)) for m in pairs]


def write_matches_report(path: str | Path, result: MatchResult) -> int:
    """The matches report as CSV (``MATCHES_REPORT_COLUMNS``), written atomically; returns rows."""
    rows = matches_report_rows(result)
    atomic_write_csv(path, MATCHES_REPORT_COLUMNS, rows)
    return len(rows)


def _stem(key: str) -> str:
    return key.rsplit(".", 1)[0]


def _same_stem(
    open_files: dict[str, str], open_tasks: dict[str, tuple[int, str]], result: MatchResult
) -> None:
    """Same name, other extension (re-encoded, .jpeg vs .jpg): pair when unique both sides."""
    file_stems = Counter(_stem(k) for k in open_files)
    task_stems = {_stem(k): k for k in open_tasks}
    task_stem_count = Counter(_stem(k) for k in open_tasks)
    for key, file in list(open_files.items()):
        stem = _stem(key)
        if file_stems[stem] == 1 and task_stem_count[stem] == 1:
            task_id, reference = open_tasks.pop(task_stems[stem])
            result.matches.append(Match(file, task_id, "stem", 100.0, task_file_name(reference)))
            del open_files[key]


def _fuzzy(
    open_files: dict[str, str],
    open_tasks: dict[str, tuple[int, str]],
    result: MatchResult,
    cutoff: float,
    margin: float,
) -> None:
    # Candidates only among tasks with the same digit runs: one digit apart is another image.
    by_digits: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for key in open_tasks:
        by_digits[digit_runs(key)].append(key)
    claims: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for key, file in open_files.items():
        candidates = by_digits.get(digit_runs(key), [])
        found = process.extract(key, candidates, scorer=fuzz.ratio, limit=2, score_cutoff=cutoff)
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
            result.matches.append(Match(file, task_id, "fuzzy", score, task_file_name(ref)))
        elif claimants:
            names = ", ".join(f for f, _ in claimants)
            reason = f"ambiguous: several files are close ({names})"
            result.unmatched_tasks.append(Unmatched(ref, reason, task_id))
            result.unmatched_files.extend(
                Unmatched(f, f"ambiguous: task {task_id} is as close to other files") for f, _ in claimants
            )
        else:
            result.unmatched_tasks.append(Unmatched(ref, "no file with this name", task_id))
