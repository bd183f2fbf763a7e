"""``ingest``: a source (folder, S3 prefix, URL list, REST API, videos) -> a manifest CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.params import IngestParams
from prelabel.ingest.fetch import Fetcher, FetchOptions
from prelabel.ingest.manifest import (
    IngestResult,
    SourceSpec,
    ingest,
    iter_source,
    write_ingest_report,
    write_manifest,
)
from prelabel.settings import load_settings

__all__ = ["ingest_flow"]


@task(name="ingest-source", cache_policy=NO_CACHE)
def ingest_source(params: IngestParams) -> IngestResult:
    """List, sample, fetch and check the whole source (streaming: bounded memory)."""
    settings = load_settings()
    options = FetchOptions(params.concurrency, params.timeout, params.retries, max_bytes=params.max_bytes)
    fetcher = Fetcher(settings, options)
    out = Path(params.out)
    spec = SourceSpec(
        params.source, params.video_fps, params.frames_dir or str(out.parent / f"{out.stem}_frames"),
        params.url_column, params.url_path, params.label_path, params.page_size, params.max_items,
    )  # fmt: skip
    return ingest(
        iter_source(spec, fetcher, settings), fetcher, sample=params.sample, stratify_by=params.stratify_by,
        equal=params.equal_per_stratum, seed=params.seed,
    )  # fmt: skip


@flow(name="ingest", log_prints=False)
def ingest_flow(params: IngestParams) -> dict[str, Any]:
    """Write the manifest and its report (errors, duplicates, strata) and say what happened."""
    log = get_run_logger()
    result = ingest_source(params)
    manifest = write_manifest(params.out, result.rows)
    files = write_ingest_report(manifest, result)
    counts = {"listed": result.listed, "kept": len(result.rows), "duplicates": len(result.duplicates),
              "failed": len(result.errors)}  # fmt: skip
    lines = ["# prelabel ingest", "", f"Source `{params.source}` -> `{manifest}`", "", "| | count |",
             "| --- | ---: |", *(f"| {k} | {v:,} |" for k, v in counts.items())]  # fmt: skip
    if result.strata:
        lines += ["", "| stratum | available | sampled |", "| --- | ---: | ---: |"]
        lines += [f"| {s.stratum} | {s.available:,} | {s.sampled:,} |" for s in result.strata]
    create_markdown_artifact("\n".join(lines), key="prelabel-ingest", description="prelabel ingest")
    log.info("%(listed)d listed, %(kept)d kept, %(duplicates)d duplicates, %(failed)d failed", counts)
    return {**counts, "manifest": str(manifest), "files": files,
            "strata": [[s.stratum, s.available, s.sampled] for s in result.strata]}  # fmt: skip
