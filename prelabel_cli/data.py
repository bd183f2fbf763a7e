"""Commands that move data: ``ingest`` (a source -> a manifest), ``export`` (pseudo-labels
out), ``pull`` (human annotations back)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prelabel.errors import PrelabelError
from prelabel_cli.app import EXIT_IMAGES_FAILED, app
from prelabel_cli.checks import check_images, check_model, check_project
from prelabel_cli.options import (
    AllowFailures,
    ApiKey,
    CacheDir,
    InputDir,
    LsUrl,
    Manifest,
    MaxPixels,
    ModelOptionList,
    ProjectId,
    Refresh,
    images_source,
    model_options,
    use_api_key,
)
from prelabel_cli.runs import run_flow

if TYPE_CHECKING:
    from prelabel.labelstudio.pullback import PullReport
    from prelabel.reports import ExportSummary, IngestSummary

__all__ = ["export", "ingest", "pull"]


@app.command()
def ingest(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Folder, s3://bucket/prefix, .txt/.csv URL list, "
            "http(s):// paged REST endpoint, or video file/folder.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Manifest CSV to write; reports go beside it.")],
    sample: Annotated[int | None, typer.Option("--sample", help="Draw N items (before downloading).")] = None,
    stratify_by: Annotated[str | None, typer.Option("--stratify-by", help="Column to stratify by.")] = None,
    equal: Annotated[
        bool, typer.Option("--equal-per-stratum", help="Equal counts, not proportional.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    video_fps: Annotated[
        float | None, typer.Option("--video-fps", help="Frames/s from videos; 0 = all.")
    ] = None,
    url_column: Annotated[str, typer.Option("--url-column", help="URL column of a CSV list.")] = "url",
    url_path: Annotated[
        str, typer.Option("--url-path", help="REST: e.g. trees[].image_url.")
    ] = "items[].image_url",
    label_path: Annotated[str | None, typer.Option("--label-path", help="REST: label field, dotted.")] = None,
    max_items: Annotated[int | None, typer.Option("--max-items", help="REST: stop after N items.")] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=512, help="Downloads at once.")
    ] = 32,
    allow_failures: AllowFailures = False,
) -> None:
    """List a source, sample it, download and check the images, drop duplicates: a manifest CSV.

    Example: prelabel ingest --source s3://bucket/photos --out photos.csv --sample 1000 --seed 1
    """
    from flows.ingest import ingest_flow
    from flows.params import IngestParams

    params = IngestParams(
        source=source, out=str(out), sample=sample, stratify_by=stratify_by, equal_per_stratum=equal,
        seed=seed, video_fps=video_fps, url_column=url_column, url_path=url_path, label_path=label_path,
        max_items=max_items, concurrency=concurrency,
    )  # fmt: skip
    project = source.removeprefix("ls://")
    if source.startswith("ls://") and project.isdigit():  # a Label Studio project's images
        check_project(None, int(project))
    done: IngestSummary = run_flow(ingest_flow, params, show=_ingest_lines)
    if done.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


def _ingest_lines(done: IngestSummary) -> str:
    lines = [f"{done.kept} images in {done.manifest} ({done.listed} listed, "
             f"{done.duplicates} duplicates, {done.failed} failed)"]  # fmt: skip
    lines += [f"  {s.stratum or '(all)'}: {s.sampled} of {s.available}" for s in done.strata]
    lines += [f"  {kind}: {path}" for kind, path in sorted(done.files.items())]
    return "\n".join(lines)


@app.command()
def export(
    to: Annotated[str, typer.Option("--to", help="s3://bucket/prefix or a folder.")],
    model: Annotated[str, typer.Option("--model", help="Model name, e.g. dinox (see `prelabel models`).")],
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    with_images: Annotated[
        bool,
        typer.Option("--with-images", help="Write the images too, as displayed (EXIF orientation applied)."),
    ] = False,
    keep_original_images: Annotated[
        bool,
        typer.Option(
            "--keep-original-images",
            help="Write the source bytes unchanged; boxes and masks then follow the stored pixel grid.",
        ),
    ] = False,
    category: Annotated[
        list[str] | None,
        typer.Option(
            "--category",
            help="A COCO category, in id order; repeatable (default: the model's "
            "classes, else first seen). Other labels are left out and counted.",
        ),
    ] = None,
    label_map: Annotated[Path | None, typer.Option("--label-map", help="JSON/YAML label map file.")] = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            max=10_000,
            help="Images per COCO JSON file (default: PRELABEL_TASK_BATCH_SIZE, 256).",
        ),
    ] = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", help="Key list and errors.")] = Path(
        "prelabel-output"
    ),
    max_pixels: MaxPixels = None,
    allow_failures: AllowFailures = False,
) -> None:
    """Pseudo-labels to S3 or a folder: COCO JSON per batch, a PNG per mask, optionally images.

    Resumable: objects already there with the same content are skipped.
    Example: prelabel export --manifest photos.csv --model dinox --to s3://bucket/pseudo --with-images
    """
    from flows.export import export as export_flow
    from flows.params import ExportParams
    from prelabel.labelstudio.labelmap import load_label_map

    folder, listed = images_source(input_dir, manifest)
    mapping = dict(load_label_map(label_map).mapping) if label_map else None
    params = ExportParams(
        input_dir=folder, manifest=listed, model=model, model_options=model_options(model_option), to=to,
        with_images=with_images, label_map=mapping, cache_dir=cache_dir, refresh=refresh,
        batch_size=batch_size, output_dir=str(output_dir), keep_original_images=keep_original_images,
        categories=category or [], max_image_pixels=max_pixels,
    )  # fmt: skip
    check_model(params.model, params.model_options)
    check_images(params.manifest)
    done: ExportSummary = run_flow(export_flow, params, show=_export_lines)
    if done.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


def _export_lines(done: ExportSummary) -> str:
    lines = [
        f"{kind}: {done.written.get(kind, 0)} written, {done.skipped.get(kind, 0)} already there"
        for kind in sorted(set(done.written) | set(done.skipped))
    ]
    if done.unmatched:
        left = ", ".join(f"{label} ({n})" for label, n in sorted(done.unmatched.items()))
        lines.append(f"labels outside the categories, left out: {left}")
    return "\n".join([*lines, f"keys: {done.keys}; {done.failed} of {done.images} images failed"])


@app.command()
def pull(
    project_id: ProjectId,
    out: Annotated[Path, typer.Option("--out", help="Output folder (keeps the incremental state too).")],
    format: Annotated[
        list[str] | None,
        typer.Option("--format", help="coco, parquet or csv; repeatable (default coco + parquet)."),
    ] = None,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
    all_annotators: Annotated[
        bool, typer.Option("--all-annotators", help="Not just the latest annotation.")
    ] = False,
    full: Annotated[bool, typer.Option("--full", help="Fetch everything, not only what changed.")] = False,
    allow_failures: Annotated[
        bool, typer.Option("--allow-failures", help="Exit 0 even when some annotations could not be read.")
    ] = False,
) -> None:
    """Pull human annotations back to COCO JSON and Parquet/CSV (incremental).

    Example: prelabel pull --project-id 3 --out exports/ --format coco --format csv
    """
    from flows.params import PullParams
    from flows.pull_annotations import pull_annotations

    use_api_key(api_key, ls_url)
    formats = format or ["coco", "parquet"]
    bad = [f for f in formats if f not in {"coco", "parquet", "csv"}]
    if bad:
        raise PrelabelError(f"--format {bad[0]!r}: use coco, parquet or csv")
    params = PullParams.model_validate(
        {"project_id": project_id, "out": str(out), "formats": formats, "ls_url": ls_url,
         "all_annotators": all_annotators, "full": full}
    )  # fmt: skip
    check_project(params.ls_url, params.project_id)
    report: PullReport = run_flow(pull_annotations, params, show=_pull_lines)
    if report.errors and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


def _pull_lines(report: PullReport) -> str:
    lines = [f"fetched {report.fetched} tasks, {report.stored} annotated, {report.regions} regions: "
             + ", ".join(str(f) for f in report.files)]  # fmt: skip
    if report.not_exported:
        counted = ", ".join(f"{kind} ({n})" for kind, n in sorted(report.not_exported.items()))
        lines.append(f"not exported yet, counted: {counted}")
    if report.errors:
        lines.append(f"{len(report.errors)} results could not be read: see {report.errors_file}")
    return "\n".join(lines)
