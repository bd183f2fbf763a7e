"""Commands that predict: ``run`` (one step), ``post`` and ``infer`` (two steps), ``convert`` (offline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from prelabel.defaults import DEFAULT_TOLERANCE, LOCAL_FILES_PREFIX
from prelabel.errors import PrelabelError
from prelabel.failures import write_errors
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap, Normalization, load_label_map, require_targets
from prelabel_cli.app import EXIT_IMAGES_FAILED, app
from prelabel_cli.checks import check_images, check_model, check_project, check_verifier
from prelabel_cli.options import (
    AllowFailures,
    CacheDir,
    InputDir,
    Manifest,
    MaxPixels,
    MinVerified,
    ModelOptionList,
    PolygonTolerance,
    PostOptions,
    Refresh,
    TaskBatch,
    VerifierFile,
    images_source,
    model_options,
    posting_options,
)
from prelabel_cli.runs import run_flow, run_posting_flow

if TYPE_CHECKING:
    from prelabel.offline import ConvertResult

__all__ = ["convert", "infer", "post", "run"]

ModelName = Annotated[
    str,
    typer.Option(
        "--model",
        help="Model: ocr, dinox, detr, ..., or a chain: detr+vitpose+siglip (see `prelabel models`).",
    ),
]


@app.command()
@posting_options
def run(
    shared: PostOptions,
    model: ModelName,
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    verifier: VerifierFile = None,
    min_verified: MinVerified = 0.5,
    max_pixels: MaxPixels = None,
) -> None:
    """One step: run a model over a folder (or a manifest) and post its predictions to a project.

    Example: prelabel run --input-dir photos --project-id 3 --model ocr --import-new
    """
    from flows.common import label_map
    from flows.params import PreannotateParams
    from flows.preannotate import preannotate

    folder, listed = images_source(input_dir, manifest)
    params = PreannotateParams(
        input_dir=folder, manifest=listed, model=model, model_options=model_options(model_option),
        cache_dir=cache_dir, refresh=refresh, verifier=check_verifier(verifier), min_verified=min_verified,
        max_image_pixels=max_pixels, **shared.flow_params(),
    )  # fmt: skip
    check_model(params.model, params.model_options)
    check_images(params.manifest)
    project = check_project(params.ls_url, params.project_id)
    label_map(params, project.config)  # its targets are the project's labels, or one line now
    run_posting_flow(preannotate, params, shared.allow_failures)


@app.command()
@posting_options
def post(
    shared: PostOptions,
    input_dir: Annotated[
        Path,
        typer.Option("--input-dir", help="Images with raw prediction files (beside them or in --raw-dir)."),
    ],
    raw_dir: Annotated[
        Path | None, typer.Option("--raw-dir", help="Raw files, if not beside the images.")
    ] = None,
) -> None:
    """Two-step, step 2: post raw prediction files to the matching tasks.

    Example: prelabel post --input-dir photos --project-id 3 --label-map map.json --model-version dinox-v1
    """
    from flows.common import label_map
    from flows.params import PostParams
    from flows.post_predictions import post_predictions

    params = PostParams(
        input_dir=str(input_dir), raw_dir=str(raw_dir) if raw_dir else None, **shared.flow_params()
    )
    project = check_project(params.ls_url, params.project_id)
    label_map(params, project.config)  # its targets are the project's labels, or one line now
    run_posting_flow(post_predictions, params, shared.allow_failures)


@app.command()
def infer(
    model: ModelName,
    out: Annotated[Path, typer.Option("--out", help="Folder for the raw prediction files.")],
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    batch_size: TaskBatch = None,
    max_pixels: MaxPixels = None,
    allow_failures: AllowFailures = False,
) -> None:
    """Two-step, step 1: run a model and save raw predictions (<out>/<image path>.prelabel.json).

    Example: prelabel infer --input-dir photos --model ocr --out raw/
    """
    from flows.infer import infer as infer_flow
    from flows.params import InferParams

    folder, listed = images_source(input_dir, manifest)
    params = InferParams(input_dir=folder, manifest=listed, model=model, out=str(out), cache_dir=cache_dir,
                         model_options=model_options(model_option), refresh=refresh,
                         batch_size=batch_size, max_image_pixels=max_pixels)  # fmt: skip
    check_model(params.model, params.model_options)
    check_images(params.manifest)
    summary = run_flow(infer_flow, params, show=lambda s: s.line())
    if summary.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


@app.command()
def convert(
    input_dir: Annotated[
        Path, typer.Option("--input-dir", help="Folder of images with raw prediction files beside them.")
    ],
    config: Annotated[
        Path, typer.Option("--config", help="The project's labeling config (XML file), e.g. labeling.xml.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Task file to write, e.g. tasks.json.")] = Path(
        "tasks.json"
    ),
    label_map: Annotated[
        Path | None,
        typer.Option(
            "--label-map", help='JSON/YAML file of model label -> project label: {"car": "vehicle"}.'
        ),
    ] = None,
    plurals: Annotated[
        bool, typer.Option("--plurals/--no-plurals", help="Let 'cars' match the label 'car'.")
    ] = False,
    model_version: Annotated[
        str, typer.Option("--model-version", help="model_version stored with each prediction.")
    ] = "prelabel",
    raw_dir: Annotated[
        Path | None,
        typer.Option(
            "--raw-dir", help="Raw files: <name>.prelabel.json, <stem>_dinox_preannot.json or <stem>.json."
        ),
    ] = None,
    url_prefix: Annotated[str, typer.Option("--url-prefix", help="Prefix of each task's image URL.")] = (
        LOCAL_FILES_PREFIX
    ),
    document_root: Annotated[
        Path | None,
        typer.Option(
            "--document-root", help="Image URLs are relative to this folder (default: --input-dir)."
        ),
    ] = None,
    masks: Annotated[
        bool | None,
        typer.Option("--masks/--no-masks", help="Require / skip brush masks (default: when available)."),
    ] = None,
    polygon_tolerance: PolygonTolerance = DEFAULT_TOLERANCE,
    errors_csv: Annotated[
        Path | None, typer.Option("--errors-csv", help="Write per-image errors to this CSV.")
    ] = None,
    allow_failures: Annotated[
        bool, typer.Option("--allow-failures", help="Exit 0 even when some images failed.")
    ] = False,
) -> None:
    """Turn raw prediction files into a Label Studio import file, offline.

    Example: prelabel convert --input-dir photos --config labeling.xml --label-map map.json
    --out tasks.json, then import tasks.json into the project (Label Studio serving
    photos/ as local files).
    """
    from prelabel.offline import convert_directory, write_tasks

    normalization = Normalization(plurals=plurals)
    mapping = load_label_map(label_map, normalization) if label_map else LabelMap(normalization=normalization)
    parsed = parse_label_config(_read_text(config))
    if label_map is not None:
        require_targets(mapping, parsed, str(label_map))
    result = convert_directory(
        input_dir, parsed, mapping, model_version,
        raw_dir=raw_dir, url_prefix=url_prefix, document_root=document_root, masks=masks,
        polygon_tolerance=polygon_tolerance,
    )  # fmt: skip
    write_tasks(out, result.tasks)
    if errors_csv is not None:
        write_errors(errors_csv, result.errors)
    _print_summary(result, out)
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
