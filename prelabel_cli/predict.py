"""Commands that predict: ``run`` (one step), ``post`` and ``infer`` (two steps), ``convert`` (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.params import InferParams, PostParams, PreannotateParams
from prelabel.core.defaults import LOCAL_FILES_PREFIX
from prelabel.core.errors import PrelabelError
from prelabel.core.failures import write_errors
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap, Normalization, load_label_map, require_targets
from prelabel_cli.checks import check_images, check_model, check_project_meanwhile, check_verifier
from prelabel_cli.collector import collector_paused
from prelabel_cli.exits import EXIT_IMAGES_FAILED
from prelabel_cli.options import (
    ADVANCED,
    BASICS,
    LABEL_STUDIO,
    MODEL,
    OUTPUT,
    AllowFailures,
    CacheDir,
    InputDir,
    Manifest,
    MaxPixels,
    ModelName,
    ModelOptionList,
    PostOptions,
    Refresh,
    TaskBatch,
    flow_default,
    flow_option,
    images_source,
    model_options,
    posting_options,
    renamed,
)
from prelabel_cli.runs import run_flow, run_posting_flow

if TYPE_CHECKING:
    from prelabel.predict.offline import ConvertResult

__all__ = ["convert", "infer", "post", "run"]

_PIXELS = renamed(max_pixels="--max-image-pixels")


# This module's top-level commands; ``prelabel_cli.app`` adds them to ``prelabel`` in help order.
commands = typer.Typer()


@commands.command(cls=_PIXELS, rich_help_panel="Pre-annotate")
@posting_options
def run(
    shared: PostOptions,
    model: ModelName,
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    verifier: Annotated[Path | None, flow_option(PreannotateParams, "verifier", MODEL)] = None,
    min_verified: Annotated[float, flow_option(PreannotateParams, "min_verified", MODEL)] = flow_default(
        PreannotateParams, "min_verified"
    ),
    max_pixels: MaxPixels = None,
    keyframe_iou: Annotated[float, flow_option(PreannotateParams, "keyframe_iou", MODEL)] = flow_default(
        PreannotateParams, "keyframe_iou"
    ),
) -> None:
    """One step: run a model over a folder (or a manifest) and post its predictions to a project.
    A video model (sam3-video, detect-track) tracks the objects of a folder of videos in a video project.

    Images are matched to the project's tasks by file name (--import-new makes tasks for the
    others); tasks that already have this model version are skipped, so a rerun posts nothing
    twice.

    Examples:

    prelabel run --input-dir photos --project-id 3 --model ocr --import-new

    prelabel run --manifest photos.csv --project-id 3 --model grounded-sam2 --label-map map.json --dry-run
    """
    from prelabel.predict.models.video import tracks_videos

    folder, listed = images_source(input_dir, manifest, videos=tracks_videos(model))
    params = PreannotateParams(
        input_dir=folder,
        manifest=listed,
        model=model,
        model_options=model_options(model_option),
        cache_dir=cache_dir,
        refresh=refresh,
        verifier=check_verifier(verifier),
        min_verified=min_verified,
        max_image_pixels=max_pixels,
        keyframe_iou=keyframe_iou,
        **shared.flow_params(),
    )
    check_model(params.model, params.model_options)
    check_images(params.manifest)
    with check_project_meanwhile(params.ls_url, params.project_id) as project, collector_paused():
        from flows.common import label_map
        from flows.preannotate import preannotate
    label_map(params, project().config)  # its targets are the project's labels, or one line now
    run_posting_flow(preannotate, params, shared.allow_failures)


@commands.command(rich_help_panel="Pre-annotate")
@posting_options
def post(
    shared: PostOptions,
    input_dir: Annotated[Path, flow_option(PostParams, "input_dir", BASICS)],
    raw_dir: Annotated[Path | None, flow_option(PostParams, "raw_dir", BASICS)] = None,
) -> None:
    """Two steps, the second: post raw prediction files (from `prelabel infer` or elsewhere) to the
    matching tasks.

    Examples:

    prelabel post --input-dir photos --raw-dir raw --project-id 3 --model-version dinox-v1

    prelabel post --input-dir photos --project-id 3 --label-map map.json --dry-run
    """
    params = PostParams(
        input_dir=str(input_dir), raw_dir=str(raw_dir) if raw_dir else None, **shared.flow_params()
    )
    with check_project_meanwhile(params.ls_url, params.project_id) as project, collector_paused():
        from flows.common import label_map
        from flows.post_predictions import post_predictions
    label_map(params, project().config)  # its targets are the project's labels, or one line now
    run_posting_flow(post_predictions, params, shared.allow_failures)


@commands.command(
    cls=renamed(out="--output-dir", max_pixels="--max-image-pixels"), rich_help_panel="Pre-annotate"
)
def infer(
    model: ModelName,
    output_dir: Annotated[Path, flow_option(InferParams, "output_dir", BASICS)],
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    allow_failures: AllowFailures = False,
    batch_size: TaskBatch = None,
    max_pixels: MaxPixels = None,
) -> None:
    """Two steps, the first: run a model and save its raw predictions, one file per image
    (<output-dir>/<image path>.prelabel.json), for `prelabel post` or your own tools.

    Example:

    prelabel infer --input-dir photos --model ocr --output-dir raw
    """
    with collector_paused():
        from flows.infer import infer as infer_flow

    folder, listed = images_source(input_dir, manifest)
    params = InferParams(
        input_dir=folder,
        manifest=listed,
        model=model,
        output_dir=str(output_dir),
        cache_dir=cache_dir,
        model_options=model_options(model_option),
        refresh=refresh,
        batch_size=batch_size,
        max_image_pixels=max_pixels,
    )
    check_model(params.model, params.model_options)
    check_images(params.manifest)
    summary = run_flow(infer_flow, params, show=lambda s: s.line())
    if summary.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


@commands.command(cls=renamed(out="--tasks"), rich_help_panel="Pre-annotate")
def convert(
    input_dir: Annotated[
        Path,
        typer.Option(
            "--input-dir",
            rich_help_panel=BASICS,
            help="Folder of images with their raw prediction files (beside them or in --raw-dir).",
        ),
    ],
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            rich_help_panel=BASICS,
            help="The project's labeling config (XML file), e.g. labeling.xml.",
        ),
    ],
    tasks: Annotated[
        Path, typer.Option("--tasks", rich_help_panel=BASICS, help="Task file to write, e.g. tasks.json.")
    ] = Path("tasks.json"),
    raw_dir: Annotated[Path | None, flow_option(PostParams, "raw_dir", BASICS)] = None,
    label_map: Annotated[Path | None, flow_option(PostParams, "label_map_file", LABEL_STUDIO)] = None,
    plurals: Annotated[bool, flow_option(PostParams, "plurals", LABEL_STUDIO)] = flow_default(
        PostParams, "plurals"
    ),
    model_version: Annotated[
        str,
        typer.Option(
            "--model-version",
            rich_help_panel=LABEL_STUDIO,
            help="The model version stored with each prediction.",
        ),
    ] = "prelabel",
    url_prefix: Annotated[
        str,
        typer.Option("--url-prefix", rich_help_panel=LABEL_STUDIO, help="Prefix of each task's image URL."),
    ] = LOCAL_FILES_PREFIX,
    document_root: Annotated[
        Path | None,
        typer.Option(
            "--document-root",
            rich_help_panel=LABEL_STUDIO,
            help="Image URLs are relative to this folder; default --input-dir.",
        ),
    ] = None,
    errors_csv: Annotated[
        Path | None,
        typer.Option(
            "--errors-csv", rich_help_panel=OUTPUT, help="Write the images that failed to this CSV."
        ),
    ] = None,
    allow_failures: AllowFailures = False,
    masks: Annotated[
        bool | None, flow_option(PostParams, "masks", ADVANCED, flag="--masks/--no-masks")
    ] = None,
    polygon_tolerance: Annotated[
        float, flow_option(PostParams, "polygon_tolerance", ADVANCED)
    ] = flow_default(PostParams, "polygon_tolerance"),
) -> None:
    """Turn raw prediction files into a Label Studio import file, offline: no server, no Prefect.

    Import the file into the project, with Label Studio serving the images' folder as local
    files.

    Example:

    prelabel convert --input-dir photos --config labeling.xml --label-map map.json --tasks tasks.json
    """
    from prelabel.predict.offline import convert_directory, write_tasks

    normalization = Normalization(plurals=plurals)
    mapping = load_label_map(label_map, normalization) if label_map else LabelMap(normalization=normalization)
    parsed = parse_label_config(_read_text(config))
    if label_map is not None:
        require_targets(mapping, parsed, str(label_map))
    result = convert_directory(
        input_dir,
        parsed,
        mapping,
        model_version,
        raw_dir=raw_dir,
        url_prefix=url_prefix,
        document_root=document_root,
        masks=masks,
        polygon_tolerance=polygon_tolerance,
    )
    write_tasks(tasks, result.tasks)
    if errors_csv is not None:
        write_errors(errors_csv, result.errors)
    _print_summary(result, tasks)
    if result.errors and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PrelabelError(f"{path}: cannot read ({exc})") from exc


def _print_summary(result: ConvertResult, out: Path) -> None:
    typer.echo(
        f"{result.images} images: {len(result.tasks)} tasks with {result.regions} regions written to {out}; "
        f"{len(result.without_predictions)} without a prediction file; {len(result.errors)} failed"
    )
    if result.unmatched_labels:
        listed = ", ".join(f"{label} ({n})" for label, n in result.unmatched_labels.most_common())
        typer.echo(f"labels not in the project (not posted): {listed}")
    if result.dropped:
        typer.echo("dropped: " + ", ".join(f"{r} ({n})" for r, n in result.dropped.items()))
    if result.unfilled:
        typer.echo("tags the model filled on no image: " + ", ".join(sorted(result.unfilled)))
    for row in result.errors:
        typer.echo(f"error: {row.file} [{row.stage}]: {row.error}", err=True)
