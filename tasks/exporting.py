"""Tasks that write pseudo-labels to an object store (S3 or a folder)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.atomic import atomic_write_csv
from prelabel.exporting import BatchExport, ExportPlan, export_items
from prelabel.failures import ErrorRow, write_errors
from prelabel.ingest.fetch import Fetcher
from prelabel.settings import load_settings
from prelabel.store.cache import PredictionCache
from prelabel.store.export import open_store, read_index
from tasks.common import RETRY
from tasks.inference import api_guard, model_for

__all__ = ["export_batch", "read_export_keys", "write_export_report"]


@task(name="export-batch", cache_policy=NO_CACHE, **RETRY)
def export_batch(
    target: str,
    plan: ExportPlan,
    number: int,
    uris: Sequence[str],
    model: str,
    model_options: Mapping[str, Any],
    prediction_cache: PredictionCache | None,
    categories: dict[str, int],
    refresh: bool,
    max_pixels: int,
) -> tuple[BatchExport, dict[str, int]]:
    """One batch read, inferred and exported in one task run (the bytes never leave it);
    returns the report and the categories for the next batch."""
    settings = load_settings()
    with api_guard(model):
        report = export_items(
            open_store(target, settings), plan, number, uris, model_for(model, model_options),
            prediction_cache, categories, refresh=refresh, max_pixels=max_pixels, fetcher=Fetcher(settings),
        )  # fmt: skip
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
