"""The ingest task: a whole source listed, sampled, fetched and checked, in one task run."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.core.settings import load_settings
from prelabel.ingest.fetch import Fetcher, FetchOptions
from prelabel.ingest.manifest import IngestResult, SourceSpec, ingest_items, iter_source
from tasks.reporting import Progress

__all__ = ["ingest_source"]


@task(name="ingest-source", cache_policy=NO_CACHE)
def ingest_source(
    spec: SourceSpec,
    options: FetchOptions,
    sample: int | None,
    stratify_by: str | None,
    equal: bool,
    seed: int,
) -> IngestResult:
    """List, sample, fetch and check the whole source (streaming: bounded memory)."""
    settings = load_settings()
    fetcher = Fetcher(settings, options)
    unit = "videos checked" if spec.videos else "images checked"
    progress = Progress(0, "prelabel-ingest-progress", unit=unit)
    return ingest_items(
        iter_source(spec, fetcher, settings),
        fetcher,
        sample=sample,
        stratify_by=stratify_by,
        equal=equal,
        seed=seed,
        progress=progress.advance,
        videos=spec.videos,
    )
