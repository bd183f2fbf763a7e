"""Tasks that write pseudo-labels to an object store (S3 or a folder)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.core.atomic import atomic_write_csv
from prelabel.core.failures import ErrorRow, write_errors
from prelabel.core.settings import load_settings
from prelabel.export.batches import BatchExport, ExportPlan, export_inferred
from prelabel.export.targets import open_store, read_index
from prelabel.predict.batches import InferResult, ReadBatch
from tasks.common import RETRY

__all__ = ["export_batch", "read_export_keys", "write_export_report"]


@task(name="export-batch", cache_policy=NO_CACHE, **RETRY)
def export_batch(
    target: str,
    plan: ExportPlan,
    number: int,
    uris: Sequence[str],
    read: ReadBatch,
    inferred: InferResult,
    categories: dict[str, int],
) -> tuple[BatchExport, dict[str, int]]:
    """One inferred batch exported with the bytes it was read with; returns the report and the
    categories for the next batch."""
    report = export_inferred(
        open_store(target, load_settings()), plan, number, uris, read, inferred, categories
    )
    return report, categories


@task(name="read-export-keys", cache_policy=NO_CACHE, **RETRY)
def read_export_keys(target: str, batches: Sequence[int]) -> list[str]:
    """Every key the batches' indexes list (one read per batch, never a listing of the target)."""
    store = open_store(target, load_settings())
    keys: list[str] = []
    for number in batches:
        index = read_index(store, number)
        if index is not None:
            keys += sorted(index.objects)
    return keys


@task(name="write-export-report", cache_policy=NO_CACHE)
def write_export_report(out: Path, errors: Sequence[ErrorRow], keys: Sequence[str]) -> Path:
    """``export_errors.csv`` and ``export_keys.csv`` (every key written or found); the keys' path."""
    write_errors(out / "export_errors.csv", errors)
    atomic_write_csv(out / "export_keys.csv", ["key"], ([k] for k in keys))
    return out / "export_keys.csv"
