"""``prelabel``: the command-line entry point.

Commands are thin calls into the package. A ``PrelabelError`` becomes a one-line
message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from prelabel import __version__
from prelabel.errors import PrelabelError
from prelabel.labelconfig import parse_label_config
from prelabel.labelmap import LabelMap, Normalization, load_label_map
from prelabel.offline import LOCAL_FILES_PREFIX, ConvertResult, convert_directory, write_tasks
from prelabel.records import save_raw_file
from prelabel.reports import write_errors
from prelabel.samples import LABEL_CONFIG, make_samples

app = typer.Typer(
    name="prelabel",
    help="Pre-annotate Label Studio projects with detection and segmentation models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

EXIT_INPUT_ERROR = 2
EXIT_IMAGES_FAILED = 1


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
        typer.Option("--raw-dir", help="Folder of raw files (<stem>_dinox_preannot.json or <stem>.json)."),
    ] = None,
    url_prefix: Annotated[
        str, typer.Option("--url-prefix", help="Prefix of each task's image URL.")
    ] = LOCAL_FILES_PREFIX,
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
    normalization = Normalization(plurals=plurals)
    mapping = load_label_map(label_map, normalization) if label_map else LabelMap(normalization=normalization)
    parsed = parse_label_config(_read_text(config))
    result = convert_directory(
        input_dir, parsed, mapping, model_version,
        raw_dir=raw_dir, url_prefix=url_prefix, document_root=document_root, masks=masks,
    )  # fmt: skip
    write_tasks(out, result.tasks)
    if errors_csv is not None:
        write_errors(errors_csv, result.errors)
    _print_summary(result, out)
    if result.errors and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


@app.command()
def samples(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the sample images and files into.")],
) -> None:
    """Write sample images with their raw prediction files, a labeling config and a label map.

    Example: prelabel samples --out demo && prelabel convert --input-dir demo
    --config demo/labeling.xml --label-map demo/label_map.json --out demo/tasks.json
    """
    out.mkdir(parents=True, exist_ok=True)
    made = make_samples()
    for sample in made:
        (out / sample.name).write_bytes(sample.data)
        save_raw_file(out / f"{Path(sample.name).stem}_dinox_preannot.json", sample.detections)
    (out / "labeling.xml").write_text(LABEL_CONFIG, encoding="utf-8")
    (out / "label_map.json").write_text(json.dumps({"car": "civilian vehicle"}, indent=2), encoding="utf-8")
    typer.echo(
        f"wrote {len(make_samples())} sample images, raw files, labeling.xml and label_map.json to {out}"
    )


@app.command()
def version() -> None:
    """Print the prelabel version."""
    typer.echo(__version__)


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
    for row in result.errors:
        typer.echo(f"error: {row.file} [{row.stage}]: {row.error}", err=True)


def main() -> None:
    """Run the app; prelabel's own errors end as one line on stderr and exit code 2."""
    try:
        app()
    except PrelabelError as exc:
        typer.echo(f"prelabel: error: {exc}", err=True)
        sys.exit(EXIT_INPUT_ERROR)


if __name__ == "__main__":
    main()
