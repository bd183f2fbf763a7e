"""``export``: images -> model (through the cache) -> pseudo-labels in S3 or a folder."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import RunSizes, infer_in_batches, opaque, prediction_cache
from flows.params import ExportParams
from prelabel.failures import ErrorRow
from prelabel.pipeline import collect_images
from prelabel.reports import ExportSummary
from prelabel.store.export import ExportReport, ExportState
from tasks.exporting import export_records, list_export, write_export_report

__all__ = ["export"]


@flow(name="export", log_prints=False)
def export(params: ExportParams) -> ExportSummary:
    """Write COCO JSON per batch, a PNG per mask and optionally the images; skip what is there."""
    log = get_run_logger()
    images = collect_images(params.input_dir, params.manifest)
    existing = list_export(params.to)
    state, total, errors = ExportState(), ExportReport(), list[ErrorRow]()
    batches = infer_in_batches(params, images, prediction_cache(params), RunSizes.of(params))
    for number, inferred in enumerate(batches, start=1):
        report, state = export_records(params.to, opaque(existing), number, opaque(inferred.records), state,
                                       params.with_images, params.label_map)  # fmt: skip
        total.written.update(report.written)
        total.skipped.update(report.skipped)
        total.keys += report.keys
        errors += inferred.errors
        log.info("batch %d: %d objects written, %d already there", number, report.written.total(),
                 report.skipped.total())  # fmt: skip
    keys = write_export_report(Path(params.output_dir), opaque(errors), opaque(total.keys))
    summary = ExportSummary(to=params.to, images=len(images), failed=len(errors), written=dict(total.written),
                            skipped=dict(total.skipped), keys=str(keys))  # fmt: skip
    create_markdown_artifact(summary.markdown(), key="prelabel-export", description="prelabel export")
    return summary
