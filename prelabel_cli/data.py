"""Commands that move data: ``ingest`` (a source -> a manifest), ``export`` (pseudo-labels
out), ``pull`` (human annotations back)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flows.params import ExportParams, IngestParams, PullParams
from prelabel.core.errors import PrelabelError
from prelabel.labelstudio.formats import FORMATS
from prelabel_cli.checks import check_images, check_model, check_project
from prelabel_cli.collector import collector_paused
from prelabel_cli.exits import EXIT_IMAGES_FAILED
from prelabel_cli.options import (
    ADVANCED,
    BASICS,
    LABEL_STUDIO,
    OUTPUT,
    AllowFailures,
    ApiKey,
    CacheDir,
    InputDir,
    LsUrl,
    Manifest,
    MaxPixels,
    ModelName,
    ModelOptionList,
    ProjectId,
    Refresh,
    flow_default,
    flow_option,
    images_source,
    model_options,
    renamed,
    use_api_key,
)
from prelabel_cli.runs import run_flow

if TYPE_CHECKING:
    from prelabel.labelstudio.pullback import PullReport
    from prelabel.report.summary import ExportSummary, IngestSummary

__all__ = ["export", "ingest", "pull"]


_EXPORT_OUTPUT = Path(flow_default(ExportParams, "output_dir"))
_FORMATS: list[str] = flow_default(PullParams, "formats")


def _ingest(field: str, panel: str) -> Any:
    return flow_option(IngestParams, field, panel)


# This module's top-level commands; ``prelabel_cli.app`` adds them to ``prelabel`` in help order.
commands = typer.Typer()


@commands.command(cls=renamed(out="--manifest"), rich_help_panel="Data")
def ingest(
    source: Annotated[str, _ingest("source", BASICS)],
    manifest: Annotated[Path, _ingest("manifest", BASICS)],
    sample: Annotated[int | None, _ingest("sample", BASICS)] = None,
    seed: Annotated[int, _ingest("seed", BASICS)] = flow_default(IngestParams, "seed"),
    stratify_by: Annotated[str | None, _ingest("stratify_by", BASICS)] = None,
    equal: Annotated[bool, _ingest("equal_per_stratum", BASICS)] = flow_default(
        IngestParams, "equal_per_stratum"
    ),
    allow_failures: AllowFailures = False,
    video_fps: Annotated[float | None, _ingest("video_fps", ADVANCED)] = None,
    videos: Annotated[bool, _ingest("videos", BASICS)] = flow_default(IngestParams, "videos"),
    url_column: Annotated[str, _ingest("url_column", ADVANCED)] = flow_default(IngestParams, "url_column"),
    url_path: Annotated[str, _ingest("url_path", ADVANCED)] = flow_default(IngestParams, "url_path"),
    label_path: Annotated[str | None, _ingest("label_path", ADVANCED)] = None,
    max_items: Annotated[int | None, _ingest("max_items", ADVANCED)] = None,
    concurrency: Annotated[int, _ingest("concurrency", ADVANCED)] = flow_default(IngestParams, "concurrency"),
) -> None:
    """List a source, sample it, download and check every image, drop repeated content: a manifest
    CSV for `prelabel run --manifest`.

    A source is a folder, an s3://bucket/prefix, a .txt or .csv list of URLs, an http(s):// paged
    REST endpoint, ls://PROJECT_ID (a Label Studio project's images) or videos.

    Examples:

    prelabel ingest --source s3://bucket/photos --manifest photos.csv --sample 1000 --seed 1

    prelabel ingest --source urls.csv --manifest sample.csv --sample 500 --stratify-by label

    prelabel ingest --source s3://bucket/clips --manifest clips.csv --videos
    """
    with collector_paused():
        from flows.ingest import ingest_flow

    params = IngestParams(
        source=source,
        manifest=str(manifest),
        sample=sample,
        stratify_by=stratify_by,
        equal_per_stratum=equal,
        seed=seed,
        video_fps=video_fps,
        videos=videos,
        url_column=url_column,
        url_path=url_path,
        label_path=label_path,
        max_items=max_items,
        concurrency=concurrency,
    )
    project = source.removeprefix("ls://")
    if source.startswith("ls://") and project.isdigit():  # a Label Studio project's images
        check_project(None, int(project))
    done: IngestSummary = run_flow(ingest_flow, params, show=_ingest_lines)
    if done.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


def _ingest_lines(done: IngestSummary) -> str:
    kept = f"{done.kept} {done.unit.removesuffix('s') if done.kept == 1 else done.unit}"
    counts = f"{done.listed} listed, {done.duplicates} duplicates, {done.failed} failed"
    lines = [f"{kept} in {done.manifest} ({counts})"]
    lines += [f"  {s.stratum or '(all)'}: {s.sampled} of {s.available}" for s in done.strata]
    lines += [f"  {kind}: {path}" for kind, path in sorted(done.files.items())]
    return "\n".join(lines)


def _export(field: str, panel: str, **extra: Any) -> Any:
    return flow_option(ExportParams, field, panel, **extra)


@commands.command(cls=renamed(max_pixels="--max-image-pixels"), rich_help_panel="Data")
def export(
    to: Annotated[str, _export("to", BASICS)],
    model: ModelName,
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    with_images: Annotated[bool, _export("with_images", OUTPUT)] = flow_default(ExportParams, "with_images"),
    keep_original_images: Annotated[bool, _export("keep_original_images", OUTPUT)] = flow_default(
        ExportParams, "keep_original_images"
    ),
    category: Annotated[list[str] | None, _export("categories", OUTPUT, metavar="NAME")] = None,
    label_map: Annotated[
        Path | None,
        typer.Option(
            "--label-map",
            rich_help_panel=OUTPUT,
            help='A JSON or YAML file of model label -> exported label, e.g. {"car": "vehicle"}.',
        ),
    ] = None,
    output_dir: Annotated[Path, _export("output_dir", OUTPUT)] = _EXPORT_OUTPUT,
    allow_failures: AllowFailures = False,
    batch_size: Annotated[int | None, _export("batch_size", ADVANCED)] = None,
    max_pixels: MaxPixels = None,
) -> None:
    """Pseudo-labels for training, to S3 or a folder: COCO JSON per batch, a PNG per mask, and the
    images as displayed. No Label Studio needed.

    Resumable: what is already there with the same content is skipped.

    Example:

    prelabel export --manifest photos.csv --model dinox --to s3://bucket/pseudo --with-images --category car
    """
    with collector_paused():
        from flows.export import export as export_flow
    from prelabel.labelstudio.labelmap import load_label_map

    folder, listed = images_source(input_dir, manifest)
    mapping = dict(load_label_map(label_map).mapping) if label_map else None
    params = ExportParams(
        input_dir=folder,
        manifest=listed,
        model=model,
        model_options=model_options(model_option),
        to=to,
        with_images=with_images,
        label_map=mapping,
        cache_dir=cache_dir,
        refresh=refresh,
        batch_size=batch_size,
        output_dir=str(output_dir),
        keep_original_images=keep_original_images,
        categories=category or [],
        max_image_pixels=max_pixels,
    )
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


@commands.command(cls=renamed(out="--output-dir"), rich_help_panel="Data")
def pull(
    project_id: ProjectId,
    output_dir: Annotated[Path, flow_option(PullParams, "output_dir", BASICS)],
    format: Annotated[list[str], flow_option(PullParams, "formats", BASICS)] = _FORMATS,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
    all_annotators: Annotated[bool, flow_option(PullParams, "all_annotators", LABEL_STUDIO)] = flow_default(
        PullParams, "all_annotators"
    ),
    full: Annotated[bool, flow_option(PullParams, "full", LABEL_STUDIO)] = flow_default(PullParams, "full"),
    allow_failures: Annotated[
        bool,
        typer.Option(
            "--allow-failures",
            rich_help_panel=OUTPUT,
            help="Exit 0 even when some annotations could not be read.",
        ),
    ] = False,
) -> None:
    """Pull people's annotations back to COCO JSON and Parquet or CSV; later pulls fetch only what
    changed.

    Examples:

    prelabel pull --project-id 3 --output-dir exports

    prelabel pull --project-id 3 --output-dir exports --format coco --format csv --full
    """
    with collector_paused():
        from flows.pull_annotations import pull_annotations

    use_api_key(api_key, ls_url)
    formats = format or _FORMATS
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise PrelabelError(f"--format {bad[0]!r}: use {', '.join(FORMATS[:-1])} or {FORMATS[-1]}")
    if "mot" in formats and len(formats) > 1:
        raise PrelabelError("--format mot is a video project's pull: give it alone")
    params = PullParams.model_validate(
        {
            "project_id": project_id,
            "output_dir": str(output_dir),
            "formats": formats,
            "ls_url": ls_url,
            "all_annotators": all_annotators,
            "full": full,
        }
    )
    check_project(params.ls_url, params.project_id)
    report: PullReport = run_flow(pull_annotations, params, show=_pull_lines)
    if report.errors and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


def _pull_lines(report: PullReport) -> str:
    lines = [
        f"fetched {report.fetched} tasks, {report.stored} annotated, {report.regions} regions: "
        + ", ".join(str(f) for f in report.files)
    ]
    if report.not_exported:
        counted = ", ".join(f"{kind} ({n})" for kind, n in sorted(report.not_exported.items()))
        lines.append(f"not exported yet, counted: {counted}")
    if report.errors:
        lines.append(f"{len(report.errors)} results could not be read: see {report.errors_file}")
    return "\n".join(lines)
