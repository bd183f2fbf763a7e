"""``export``: images -> model (through the cache) -> pseudo-labels in S3 or a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import infer_in_batches, opaque, prediction_cache
from flows.params import ExportParams
from prelabel.atomic import atomic_write_csv
from prelabel.failures import ErrorRow, write_errors
from prelabel.pipeline import collect_images
from prelabel.store.export import ExportReport, ExportState
from tasks.exporting import export_records, list_export

__all__ = ["export"]


@flow(name="export", log_prints=False)
def export(params: ExportParams) -> dict[str, Any]:
    """Write COCO JSON per batch, a PNG per mask and optionally the images; skip what is there."""
    log = get_run_logger()
    images = collect_images(params.input_dir, params.manifest)
    existing = list_export(params.to)
    state, total, errors = ExportState(), ExportReport(), list[ErrorRow]()
    batches = infer_in_batches(params, images, params.batch_size, prediction_cache(params))
    for number, inferred in enumerate(batches, start=1):
        report, state = export_records(params.to, opaque(existing), number, opaque(inferred.records), state,
                                       params.with_images, params.label_map)  # fmt: skip
        total.written.update(report.written)
        total.skipped.update(report.skipped)
        total.keys += report.keys
        errors += inferred.errors
        log.info("batch %d: %d objects written, %d already there", number, report.written.total(),
                 report.skipped.total())  # fmt: skip
    out = Path(params.output_dir)
    write_errors(out / "export_errors.csv", errors)
    atomic_write_csv(out / "export_keys.csv", ["key"], ([k] for k in total.keys))
    kinds = sorted(set(total.written) | set(total.skipped))
    rows = [f"| {k} | {total.written[k]:,} | {total.skipped[k]:,} |" for k in kinds]
    lines = [f"# prelabel export to `{params.to}`", "", "| objects | written | already there |",
             "| --- | ---: | ---: |", *rows, "", f"images failed: {len(errors)}"]  # fmt: skip
    create_markdown_artifact("\n".join(lines), key="prelabel-export", description="prelabel export")
    return {"images": len(images), "failed": len(errors), "written": dict(total.written),
            "skipped": dict(total.skipped), "keys": str(out / "export_keys.csv")}  # fmt: skip
