"""``prelabel``: the command-line entry point.

Commands are thin calls into the package. A ``PrelabelError`` becomes a one-line
message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from prelabel import __version__
from prelabel.atomic import atomic_write
from prelabel.errors import PrelabelError
from prelabel.failures import write_errors
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap, Normalization, load_label_map
from prelabel.offline import LOCAL_FILES_PREFIX, ConvertResult, convert_directory, write_tasks
from prelabel.records import save_raw_file
from prelabel.reports import RunSummary
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
        atomic_write(out / sample.name, sample.data)
        save_raw_file(out / f"{Path(sample.name).stem}_dinox_preannot.json", sample.detections)
    atomic_write(out / "labeling.xml", LABEL_CONFIG)
    atomic_write(out / "label_map.json", json.dumps({"car": "civilian vehicle"}, indent=2))
    typer.echo(
        f"wrote {len(make_samples())} sample images, raw files, labeling.xml and label_map.json to {out}"
    )


_PROJECT = typer.Option("--project-id", min=1, help="Label Studio project id, e.g. 3.")
_LS_URL = typer.Option("--ls-url", help="Label Studio URL (default PRELABEL_LS_URL / LABEL_STUDIO_URL).")
_API_KEY = typer.Option(
    "--api-key", help="Label Studio token (default PRELABEL_LS_API_KEY / LABEL_STUDIO_API_KEY; prefer those)."
)

# Options shared by several commands, declared once.
LsUrl = Annotated[str | None, _LS_URL]
ApiKey = Annotated[str | None, _API_KEY]
LabelMapFile = Annotated[Path | None, typer.Option("--label-map", help="JSON/YAML label map file.")]
ModelVersion = Annotated[
    str | None, typer.Option("--model-version", help="Default: model + settings digest.")
]
OutputDir = Annotated[Path, typer.Option("--output-dir", help="Reports, payloads, contact sheet.")]
UnmatchedCsv = Annotated[Path, typer.Option("--unmatched-csv", help="Unmatched labels are appended here.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace this version's predictions.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Do everything but post.")]
ImportNew = Annotated[bool, typer.Option("--import-new", help="Import images without a task first.")]
Masks = Annotated[bool | None, typer.Option("--masks/--no-masks", help="Require / skip masks.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per Prefect task run.")]
Plurals = Annotated[bool, typer.Option("--plurals", help="Let 'cars' match the label 'car'.")]
AllowFailures = Annotated[bool, typer.Option("--allow-failures", help="Exit 0 even when images failed.")]
ModelOptionList = Annotated[list[str] | None, typer.Option("--model-option", help="KEY=VALUE, repeatable.")]
CacheDir = Annotated[str | None, typer.Option("--cache-dir", help="Folder or s3://bucket/prefix.")]
Refresh = Annotated[bool, typer.Option("--refresh", help="Ignore cached predictions.")]
_OUTPUT = Path("prelabel-output")
_UNMATCHED = Path("unmatched_labels.csv")


def _post_options(
    project_id: int,
    ls_url: str | None,
    api_key: str | None,
    label_map: Path | None,
    model_version: str | None,
    output_dir: Path,
    unmatched_csv: Path,
    overwrite: bool,
    dry_run: bool,
    import_new: bool,
    masks: bool | None,
    batch_size: int,
    plurals: bool,
) -> dict[str, Any]:
    """The options ``run`` and ``post`` share, as flow parameters; the key goes to the environment."""
    if api_key:
        os.environ["PRELABEL_LS_API_KEY"] = api_key  # never a flow parameter: it would be stored
    return {
        "project_id": project_id, "ls_url": ls_url, "label_map_file": str(label_map) if label_map else None,
        "model_version": model_version, "output_dir": str(output_dir), "unmatched_csv": str(unmatched_csv),
        "overwrite": overwrite, "dry_run": dry_run, "import_new": import_new, "masks": masks,
        "batch_size": batch_size, "plurals": plurals,
    }  # fmt: skip


@contextlib.contextmanager
def _progress_bar() -> Iterator[None]:
    """A terminal progress bar fed by the flow's per-batch progress (same process)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tasks.reporting import progress_listener

    columns = (TextColumn("images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("images", total=None)
        with progress_listener(lambda done, total: bar.update(task, completed=done, total=total)):
            yield


def _run_flow(flow: Callable[[], RunSummary], allow_failures: bool) -> None:
    """Run a posting flow under the progress bar, print its summary, exit 1 on failed images."""
    with _progress_bar():
        summary = flow()
    typer.echo(summary.markdown())
    if summary.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


def _model_options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PrelabelError(f"--model-option {pair!r}: expected KEY=VALUE, e.g. min_score=0.6")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


InputDir = Annotated[Path | None, typer.Option("--input-dir", help="Folder of images (recursive).")]
Manifest = Annotated[
    Path | None,
    typer.Option("--manifest", help="Manifest CSV from `prelabel ingest` (instead of --input-dir)."),
]


def _images_source(input_dir: Path | None, manifest: Path | None) -> tuple[str | None, str | None]:
    """(folder, manifest) as flow parameters; exactly one of them must be given."""
    if (input_dir is None) == (manifest is None):
        raise PrelabelError("give exactly one of --input-dir and --manifest")
    return (str(input_dir) if input_dir else None), (str(manifest) if manifest else None)


@app.command()
def run(
    project_id: Annotated[int, _PROJECT],
    model: Annotated[
        str, typer.Option("--model", help="Model: ocr, raw-files, ... (see `prelabel models`).")
    ],
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
    label_map: LabelMapFile = None,
    model_version: ModelVersion = None,
    output_dir: OutputDir = _OUTPUT,
    unmatched_csv: UnmatchedCsv = _UNMATCHED,
    overwrite: Overwrite = False,
    dry_run: DryRun = False,
    import_new: ImportNew = False,
    masks: Masks = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    batch_size: BatchSize = 256,
    plurals: Plurals = False,
    allow_failures: AllowFailures = False,
) -> None:
    """One step: run a model over a folder (or a manifest) and post its predictions to a project.

    Example: prelabel run --input-dir photos --project-id 3 --model ocr --import-new
    """
    from flows.params import PreannotateParams
    from flows.preannotate import preannotate

    options = _post_options(project_id, ls_url, api_key, label_map, model_version, output_dir, unmatched_csv,
                            overwrite, dry_run, import_new, masks, batch_size, plurals)  # fmt: skip
    folder, listed = _images_source(input_dir, manifest)
    params = PreannotateParams(
        input_dir=folder, manifest=listed, model=model, model_options=_model_options(model_option),
        cache_dir=cache_dir, refresh=refresh, **options,
    )  # fmt: skip
    _run_flow(lambda: preannotate(params), allow_failures)


@app.command()
def post(
    input_dir: Annotated[
        Path, typer.Option("--input-dir", help="Images with <stem>_dinox_preannot.json files.")
    ],
    project_id: Annotated[int, _PROJECT],
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
    label_map: LabelMapFile = None,
    model_version: ModelVersion = None,
    output_dir: OutputDir = _OUTPUT,
    unmatched_csv: UnmatchedCsv = _UNMATCHED,
    overwrite: Overwrite = False,
    dry_run: DryRun = False,
    raw_dir: Annotated[
        Path | None, typer.Option("--raw-dir", help="Raw files, if not beside the images.")
    ] = None,
    import_new: ImportNew = False,
    masks: Masks = None,
    batch_size: BatchSize = 256,
    plurals: Plurals = False,
    allow_failures: AllowFailures = False,
) -> None:
    """Two-step, step 2: post raw prediction files to the matching tasks.

    Example: prelabel post --input-dir photos --project-id 3 --label-map map.json --model-version dinox-v1
    """
    from flows.params import PostParams
    from flows.post_predictions import post_predictions

    options = _post_options(project_id, ls_url, api_key, label_map, model_version, output_dir, unmatched_csv,
                            overwrite, dry_run, import_new, masks, batch_size, plurals)  # fmt: skip
    params = PostParams(input_dir=str(input_dir), raw_dir=str(raw_dir) if raw_dir else None, **options)
    _run_flow(lambda: post_predictions(params), allow_failures)


@app.command()
def infer(
    model: Annotated[str, typer.Option("--model", help="Model name, e.g. ocr.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the raw prediction files.")],
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    batch_size: BatchSize = 256,
    allow_failures: AllowFailures = False,
) -> None:
    """Two-step, step 1: run a model and save raw predictions (<stem>_dinox_preannot.json).

    Example: prelabel infer --input-dir photos --model ocr --out raw/
    """
    from flows.infer import infer as infer_flow
    from flows.params import InferParams

    folder, listed = _images_source(input_dir, manifest)
    params = InferParams(input_dir=folder, manifest=listed, model=model, out=str(out), cache_dir=cache_dir,
                         model_options=_model_options(model_option), refresh=refresh,
                         batch_size=batch_size)  # fmt: skip
    counts = infer_flow(params)
    typer.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))
    if counts["failed"] and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


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
    concurrency: Annotated[int, typer.Option("--concurrency", help="Downloads at once.")] = 32,
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
    done = ingest_flow(params)
    typer.echo(f"{done['kept']} images in {done['manifest']} ({done['listed']} listed, "
               f"{done['duplicates']} duplicates, {done['failed']} failed)")  # fmt: skip
    for stratum, available, sampled in done["strata"]:
        typer.echo(f"  {stratum or '(all)'}: {sampled} of {available}")
    for kind, path in sorted(done["files"].items()):
        typer.echo(f"  {kind}: {path}")


@app.command()
def export(
    to: Annotated[str, typer.Option("--to", help="s3://bucket/prefix or a folder.")],
    model: Annotated[str, typer.Option("--model", help="Model name, e.g. dinox (see `prelabel models`).")],
    input_dir: InputDir = None,
    manifest: Manifest = None,
    model_option: ModelOptionList = None,
    with_images: Annotated[bool, typer.Option("--with-images", help="Copy the images too.")] = False,
    label_map: LabelMapFile = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per COCO JSON file.")] = 256,
    output_dir: OutputDir = _OUTPUT,
    allow_failures: AllowFailures = False,
) -> None:
    """Pseudo-labels to S3 or a folder: COCO JSON per batch, a PNG per mask, optionally images.

    Resumable: objects already there with the same content are skipped.
    Example: prelabel export --manifest photos.csv --model dinox --to s3://bucket/pseudo --with-images
    """
    from flows.export import export as export_flow
    from flows.params import ExportParams

    folder, listed = _images_source(input_dir, manifest)
    mapping = dict(load_label_map(label_map).mapping) if label_map else None
    params = ExportParams(
        input_dir=folder, manifest=listed, model=model, model_options=_model_options(model_option), to=to,
        with_images=with_images, label_map=mapping, cache_dir=cache_dir, refresh=refresh,
        batch_size=batch_size, output_dir=str(output_dir),
    )  # fmt: skip
    done = export_flow(params)
    for kind in sorted(set(done["written"]) | set(done["skipped"])):
        typer.echo(
            f"{kind}: {done['written'].get(kind, 0)} written, {done['skipped'].get(kind, 0)} already there"
        )
    typer.echo(f"keys: {done['keys']}; {done['failed']} of {done['images']} images failed")
    if done["failed"] and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


@app.command()
def pull(
    project_id: Annotated[int, _PROJECT],
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
) -> None:
    """Pull human annotations back to COCO JSON and Parquet/CSV (incremental).

    Example: prelabel pull --project-id 3 --out exports/ --format coco --format csv
    """
    from flows.params import PullParams
    from flows.pull_annotations import pull_annotations

    if api_key:
        os.environ["PRELABEL_LS_API_KEY"] = api_key
    formats = format or ["coco", "parquet"]
    bad = [f for f in formats if f not in {"coco", "parquet", "csv"}]
    if bad:
        raise PrelabelError(f"--format {bad[0]!r}: use coco, parquet or csv")
    params = PullParams.model_validate(
        {"project_id": project_id, "out": str(out), "formats": formats, "ls_url": ls_url,
         "all_annotators": all_annotators, "full": full}
    )  # fmt: skip
    report = pull_annotations(params)
    typer.echo(f"fetched {report.fetched} tasks, {report.stored} annotated, {report.regions} regions: "
               + ", ".join(str(f) for f in report.files))  # fmt: skip


@app.command()
def models() -> None:
    """List the models and the task types they serve."""
    from prelabel.models import available_models

    for name, types in available_models().items():
        typer.echo(f"{name}: {', '.join(types)}")


labelstudio_app = typer.Typer(
    help="A local Label Studio (own virtual environment, 127.0.0.1).", no_args_is_help=True
)
app.add_typer(labelstudio_app, name="labelstudio")
_DEMO_HOME = Path.home() / ".cache" / "prelabel" / "demo"


@labelstudio_app.command("start")
def labelstudio_start(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Label Studio's data.")] = _DEMO_HOME
    / "label-studio",
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (a free one when taken).")] = 8080,
) -> None:
    """Install (once) and start Label Studio in the background; print how to use it.

    Example: prelabel labelstudio start && prelabel labelstudio stop
    """
    from prelabel_cli import labelstudio

    server = labelstudio.start(data_dir, _port(port))
    _print_server(server)


@labelstudio_app.command("stop")
def labelstudio_stop() -> None:
    """Stop the Label Studio that `prelabel labelstudio start` (or `prelabel demo`) left running."""
    from prelabel_cli import labelstudio

    typer.echo("stopped" if labelstudio.stop() else "no local Label Studio was running")


@app.command()
def demo(
    home: Annotated[Path, typer.Option("--home", help="Where the demo keeps its data.")] = _DEMO_HOME,
    port: Annotated[int, typer.Option("--port", help="Label Studio port on 127.0.0.1.")] = 8080,
) -> None:
    """The offline demo: a local Label Studio, a project, sample images, OCR predictions, reports.

    Running it again finishes quickly and changes nothing. Example: prelabel demo
    """
    from flows.params import PreannotateParams
    from flows.preannotate import preannotate
    from prelabel.labelstudio.client import LabelStudioClient
    from prelabel_cli import labelstudio

    server = labelstudio.start(home / "label-studio", _port(port))
    images = home / "images"
    images.mkdir(parents=True, exist_ok=True)
    for sample in make_samples():
        if not (images / sample.name).exists():
            atomic_write(images / sample.name, sample.data)
    with LabelStudioClient(server.url, server.legacy_token) as client:
        project = client.find_project("prelabel demo") or client.create_project("prelabel demo", LABEL_CONFIG)
    os.environ["PRELABEL_LS_URL"] = server.url
    os.environ["PRELABEL_LS_API_KEY"] = server.legacy_token.get_secret_value()
    summary = preannotate(
        PreannotateParams(
            project_id=project.id, input_dir=str(images), model="ocr", import_new=True,
            model_version="ocr-demo", cache_dir=str(home / "cache"), output_dir=str(home / "report"),
            unmatched_csv=str(home / "report" / "unmatched_labels.csv"),
        )
    )  # fmt: skip
    typer.echo(summary.markdown())
    typer.echo(f"\nOpen {server.url}/projects/{project.id}/data to see the predictions.")
    _print_server(server)


def _port(wanted: int) -> int:
    from prelabel.labelstudio.server import free_port, port_is_free

    return wanted if port_is_free(wanted) else free_port()


def _print_server(server: Any) -> None:
    from prelabel_cli import labelstudio

    typer.echo(
        f"Label Studio: {server.url}\n"
        f"  log in as {server.username} / {server.password.get_secret_value()} (a local demo account)\n"
        f"  API tokens for PRELABEL_LS_API_KEY: in {labelstudio.state_file()} (readable by you only)\n"
        "  stop it with: prelabel labelstudio stop"
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
    # Prefect's local server would try to send telemetry out of a machine that may be offline.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        app()
    except PrelabelError as exc:
        typer.echo(f"prelabel: error: {exc}", err=True)
        sys.exit(EXIT_INPUT_ERROR)


if __name__ == "__main__":
    main()
