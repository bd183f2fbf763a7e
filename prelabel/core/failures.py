"""One failure path: a single item's failure becomes one row (file, stage, error).

Every stage that handles images one by one (read, infer, convert, post, ingest, export)
goes through ``item_failure`` or ``failure_row``, so the stage names, the errors that
count as one item's failure, and the CSV they end in are written once. Errors that are
the same for every item (a labeling config that cannot serve the request, missing
settings, a refused API token) are not one item's failure: they propagate and stop the
batch. Real bugs (TypeError, ...) propagate too, with their traceback.

A report's drawings are the one exception (``report_part``): a contact sheet or a chart is a
preview of work already done, so whatever stops one from being drawn is a row naming it
(its traceback logged), and the rest of the report is still written.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, MutableSequence, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from prelabel.core.atomic import atomic_write_csv
from prelabel.core.errors import DinoxAuthError, LabelConfigError, PrelabelError, SettingsError
from prelabel.core.redact import redact

__all__ = ["ErrorRow", "ItemAttempt", "Stage", "failure_row", "item_failure", "report_part", "write_errors"]

log = logging.getLogger(__name__)

# Failures that no single item causes: they stop the whole batch.
_BATCH_ERRORS = (LabelConfigError, SettingsError, DinoxAuthError)


class Stage(StrEnum):
    """Where an item failed; the value is what reports show."""

    READ = "read image"
    READ_PREDICTIONS = "read predictions"
    INFER = "infer"
    CONVERT = "convert"
    POST = "post"
    INGEST = "ingest"
    IMPORT = "import"
    EXPORT = "export"
    PULL = "pull"
    REPORT = "report"


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One item that could not be handled: which file, at which stage, and why."""

    file: str
    stage: Stage
    error: str


def failure_row(file: str, stage: Stage, error: PrelabelError) -> ErrorRow:
    """The row for one item's failure, credentials taken out of its URLs; a batch-wide error is
    raised instead."""
    if isinstance(error, _BATCH_ERRORS):
        raise error
    return ErrorRow(redact(file), stage, redact(str(error)))


@dataclass
class ItemAttempt:
    """The item being handled: its current stage (advance it as work proceeds) and outcome."""

    stage: Stage
    failed: bool = False


@contextlib.contextmanager
def item_failure(rows: MutableSequence[ErrorRow], file: str, stage: Stage) -> Iterator[ItemAttempt]:
    """Run one item's work; a ``PrelabelError`` becomes a row in ``rows`` and ``failed`` is set.

    ::

        with item_failure(errors, uri, Stage.READ) as attempt:
            info = read_image_info(data, name)
        if attempt.failed:
            continue
    """
    attempt = ItemAttempt(stage)
    try:
        yield attempt
    except PrelabelError as exc:
        rows.append(failure_row(file, attempt.stage, exc))
        attempt.failed = True


@contextlib.contextmanager
def report_part(rows: MutableSequence[ErrorRow], part: str) -> Iterator[ItemAttempt]:
    """Draw one part of a report (``part``: the file it writes); any failure becomes a row in
    ``rows`` and ``failed`` is set: the report around it is still written, the run not failed."""
    attempt = ItemAttempt(Stage.REPORT)
    try:
        yield attempt
    except Exception as exc:  # any: a drawing that fails must not lose the run's report
        log.warning("%s could not be drawn", redact(part), exc_info=True)
        rows.append(
            ErrorRow(
                redact(part), Stage.REPORT, redact(f"could not be drawn ({type(exc).__name__}: {exc})"[:500])
            )
        )
        attempt.failed = True


def write_errors(path: Path, errors: Sequence[ErrorRow]) -> int:
    """Per-item errors as CSV (file, stage, error), written atomically; returns rows."""
    atomic_write_csv(path, ["file", "stage", "error"], ([r.file, str(r.stage), r.error] for r in errors))
    return len(errors)
