"""Tasks that write pseudo-labels to an object store (S3 or a folder)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.atomic import atomic_write_csv
from prelabel.failures import ErrorRow, write_errors
from prelabel.ingest.fetch import Fetcher
from prelabel.records import PredictionRecord
from prelabel.settings import load_settings
from prelabel.store.export import ExportReport, ExportState, export_batch, open_store
from tasks.common import RETRY

__all__ = ["export_records", "list_export", "write_export_report"]


@task(name="list-export", cache_policy=NO_CACHE, **RETRY)
def list_export(target: str) -> dict[str, str]:
    """What the target already holds (key -> MD5): the resume point."""
    return open_store(target, load_settings()).existing()


@task(name="export-batch", cache_policy=NO_CACHE, **RETRY)
def export_records(
    target: str,
    existing: Mapping[str, str],
    number: int,
    records: Sequence[PredictionRecord],
    state: ExportState,
    with_images: bool,
    label_map: Mapping[str, str] | None,
) -> tuple[ExportReport, ExportState]:
    """One batch's COCO JSON, masks and (optionally) images; returns the state for the next batch."""
    settings = load_settings()
    images = None
    if with_images:
        fetched = Fetcher(settings).fetch_all(r.uri for r in records)
        images = {uri: data for uri, data in fetched.items() if isinstance(data, bytes)}
    store = open_store(target, settings)
    report = export_batch(store, existing, number, records, state, images, label_map)
    return report, state


@task(name="write-export-report", cache_policy=NO_CACHE)
def write_export_report(out: Path, errors: Sequence[ErrorRow], keys: Sequence[str]) -> Path:
    """``export_errors.csv`` and ``export_keys.csv`` (every key written or found); the keys' path."""
    write_errors(out / "export_errors.csv", errors)
    atomic_write_csv(out / "export_keys.csv", ["key"], ([k] for k in keys))
    return out / "export_keys.csv"
