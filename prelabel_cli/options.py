"""Options written once: their types and help, and the options ``run`` and ``post`` share.

``@posting_options`` adds the shared posting options to a command's signature and hands
them to it as one ``PostOptions``, so ``run`` and ``post`` declare them nowhere else.
Setting-backed options (batch sizes) default to None: the flow then takes the
``PRELABEL_*`` setting, so every default has one source (``prelabel.settings``).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from prelabel.defaults import DEFAULT_TOLERANCE
from prelabel.errors import PrelabelError
from prelabel.ingest.sources import has_images, no_images

__all__ = [
    "AllowFailures",
    "ApiKey",
    "CacheDir",
    "InputDir",
    "LsUrl",
    "Manifest",
    "MaxPixels",
    "MinVerified",
    "ModelOptionList",
    "PolygonTolerance",
    "PostOptions",
    "ProjectId",
    "Refresh",
    "TaskBatch",
    "VerifierFile",
    "images_source",
    "model_options",
    "posting_options",
    "use_api_key",
]

F = TypeVar("F", bound=Callable[..., Any])

ProjectId = Annotated[int, typer.Option("--project-id", min=1, help="Label Studio project id, e.g. 3.")]
LsUrl = Annotated[
    str | None,
    typer.Option("--ls-url", help="Label Studio URL (default PRELABEL_LS_URL / LABEL_STUDIO_URL)."),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="Label Studio token (default PRELABEL_LS_API_KEY / LABEL_STUDIO_API_KEY; prefer those).",
    ),
]
InputDir = Annotated[Path | None, typer.Option("--input-dir", help="Folder of images (recursive).")]
Manifest = Annotated[
    Path | None,
    typer.Option("--manifest", help="Manifest CSV from `prelabel ingest` (instead of --input-dir)."),
]
PolygonTolerance = Annotated[
    float,
    typer.Option("--polygon-tolerance", min=0, max=100,
                 help="Pixels a polygon traced from a mask may stray from its outline."),
]  # fmt: skip
ModelOptionList = Annotated[list[str] | None, typer.Option("--model-option", help="KEY=VALUE, repeatable.")]
CacheDir = Annotated[str | None, typer.Option("--cache-dir", help="Folder or s3://bucket/prefix.")]
Refresh = Annotated[bool, typer.Option("--refresh", help="Ignore cached predictions.")]
TaskBatch = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        max=10_000,
        help="Images per Prefect task run (default: PRELABEL_TASK_BATCH_SIZE, 256).",
    ),
]
VerifierFile = Annotated[
    Path | None,
    typer.Option(
        "--verifier", help="Verifier JSON from `prelabel review verifier`: drop the boxes it rejects."
    ),
]
MinVerified = Annotated[
    float,
    typer.Option("--min-verified", min=0, max=1, help="With --verifier: keep boxes with P(yes) >= this."),
]
MaxPixels = Annotated[
    int | None,
    typer.Option(
        "--max-pixels",
        min=1,
        help="Refuse images with more pixels than this (decompression bombs); default "
        "PRELABEL_MAX_IMAGE_PIXELS, 100,000,000.",
    ),
]
AllowFailures = Annotated[bool, typer.Option("--allow-failures", help="Exit 0 even when images failed.")]


@dataclass(frozen=True)
class PostOptions:
    """What ``run`` and ``post`` share: where to post, how to label, and the report files."""

    project_id: ProjectId
    ls_url: LsUrl = None
    api_key: ApiKey = None
    label_map: Annotated[Path | None, typer.Option("--label-map", help="JSON/YAML label map file.")] = None
    model_version: Annotated[
        str | None, typer.Option("--model-version", help="Default: model + settings digest.")
    ] = None
    output_dir: Annotated[Path, typer.Option("--output-dir", help="Reports, payloads, contact sheet.")] = (
        Path("prelabel-output")
    )
    unmatched_csv: Annotated[
        Path, typer.Option("--unmatched-csv", help="Unmatched labels are appended here.")
    ] = Path("unmatched_labels.csv")
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace this version's predictions.")] = (
        False
    )
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read, match, infer, report; create, upload and post nothing.")
    ] = False
    wait_seconds: Annotated[
        float,
        typer.Option("--wait", min=0, max=86_400,
                     help="Seconds to wait while another run holds the project (then exit 3)."),
    ] = 600.0  # fmt: skip
    import_new: Annotated[bool, typer.Option("--import-new", help="Import images without a task first.")] = (
        False
    )
    fuzzy: Annotated[
        bool, typer.Option("--fuzzy", help="Also pair similar names (never across numbers); see matches.csv.")
    ] = False
    masks: Annotated[bool | None, typer.Option("--masks/--no-masks", help="Require / skip masks.")] = None
    polygon_tolerance: PolygonTolerance = DEFAULT_TOLERANCE
    show_predictions: Annotated[
        bool, typer.Option("--show-predictions", help="Show this model version's predictions to annotators.")
    ] = False
    task_data: Annotated[
        str | None,
        typer.Option("--task-data", help="Manifest columns put into new tasks' data (with --import-new), "
                     "e.g. label,camera."),
    ] = None  # fmt: skip
    batch_size: TaskBatch = None
    plurals: Annotated[bool, typer.Option("--plurals", help="Let 'cars' match the label 'car'.")] = False
    allow_failures: AllowFailures = False

    def flow_params(self) -> dict[str, Any]:
        """The options as flow parameters; the key goes to the environment, never a parameter."""
        use_api_key(self.api_key, self.ls_url)
        given = asdict(self)
        for name in ("api_key", "allow_failures"):
            given.pop(name)
        label_map = given.pop("label_map")
        given["label_map_file"] = str(label_map) if label_map else None
        given["output_dir"], given["unmatched_csv"] = str(self.output_dir), str(self.unmatched_csv)
        given["task_data"] = [c.strip() for c in (self.task_data or "").split(",") if c.strip()]
        return given


def posting_options(command: F) -> F:
    """Add ``PostOptions``' fields to ``command``'s options; it receives them as ``shared``."""
    own = inspect.signature(command, eval_str=True)
    hints = get_type_hints(PostOptions, include_extras=True)
    empty = inspect.Parameter.empty
    extra = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                          default=empty if f.default is MISSING else f.default)
        for f in fields(PostOptions)
    ]  # fmt: skip
    kept = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values() if p.name != "shared"
    ]
    # Required options first: a signature lists parameters without defaults before the others.
    ordered = sorted([*extra, *kept], key=lambda p: p.default is not inspect.Parameter.empty)

    @functools.wraps(command)
    def wrapper(**given: Any) -> Any:
        shared = PostOptions(**{f.name: given.pop(f.name) for f in fields(PostOptions)})
        return command(shared=shared, **given)

    wrapper.__signature__ = own.replace(parameters=ordered)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in ordered}
    return wrapper  # type: ignore[return-value]


def use_api_key(api_key: str | None, ls_url: str | None) -> None:
    """A key given on the command line reaches the flow through the environment only, bound to
    the URL given with it (else the configured URL): ``--ls-url`` and ``--api-key`` are a pair."""
    if api_key:
        os.environ["PRELABEL_LS_API_KEY"] = api_key
        if ls_url:
            os.environ["PRELABEL_LS_URL"] = ls_url


def model_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (values read as JSON where they parse) as a dict."""
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


def images_source(input_dir: Path | None, manifest: Path | None) -> tuple[str | None, str | None]:
    """(folder, manifest) as flow parameters; exactly one of them must be given."""
    if (input_dir is None) == (manifest is None):
        raise PrelabelError("give exactly one of --input-dir and --manifest")
    if input_dir is not None and not input_dir.is_dir():
        raise PrelabelError(
            f"--input-dir {input_dir}: {'not a folder' if input_dir.exists() else 'no such folder'}"
        )
    if input_dir is not None and not has_images(input_dir):
        raise no_images(input_dir)
    if manifest is not None and not manifest.is_file():
        raise PrelabelError(f"--manifest {manifest}: no such file")
    return (str(input_dir) if input_dir else None), (str(manifest) if manifest else None)
