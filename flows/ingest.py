"""``ingest``: a source (folder, S3 prefix, URL list, REST API, videos) -> a manifest CSV."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.params import IngestParams
from prelabel.ingest.fetch import FetchOptions
from prelabel.ingest.manifest import SourceSpec, frames_dir_for, write_ingest_report, write_manifest
from prelabel.report.summary import IngestSummary
from tasks.ingesting import ingest_source

__all__ = ["ingest_flow"]


@flow(name="ingest", log_prints=False)
def ingest_flow(params: IngestParams) -> IngestSummary:
    """Write the manifest and its report (errors, duplicates, strata) and say what happened."""
    log = get_run_logger()
    spec = SourceSpec(
        params.source,
        params.video_fps,
        frames_dir_for(params.manifest, params.frames_dir),
        params.url_column,
        params.url_path,
        params.label_path,
        params.page_size,
        params.max_items,
        params.videos,
    )
    options = FetchOptions(params.concurrency, params.timeout, params.retries, max_bytes=params.max_bytes)
    result = ingest_source(
        spec, options, params.sample, params.stratify_by, params.equal_per_stratum, params.seed
    )
    manifest = write_manifest(params.manifest, result.rows)
    summary = IngestSummary(
        source=params.source,
        manifest=str(manifest),
        listed=result.listed,
        kept=len(result.rows),
        duplicates=len(result.duplicates),
        failed=len(result.errors),
        files=write_ingest_report(manifest, result),
        strata=result.strata,
        unit="videos" if params.videos else "images",
    )
    create_markdown_artifact(summary.markdown(), key="prelabel-ingest", description="prelabel ingest")
    log.info(
        "%d listed, %d kept, %d duplicates, %d failed",
        summary.listed,
        summary.kept,
        summary.duplicates,
        summary.failed,
    )
    return summary
