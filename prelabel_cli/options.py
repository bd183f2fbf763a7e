"""Options written once: their panels, names, help, bounds and defaults.

An option that sets a flow parameter takes its help, bounds and default from the parameter's
pydantic field (``flows.params``, through ``flow_option`` and ``flow_default``), so ``--help``
and the Prefect UI's run form say the same words; its name is the parameter's, hyphenated,
except for the few in ``OPTION_NAMES``. Options sit in help panels, in this order: the basics,
the model, Label Studio, the output, the advanced ones. ``@posting_options`` adds the options
``run`` and ``post`` share and hands them over as one ``PostOptions``. An option or command
renamed for one name per meaning keeps its old spelling as a hidden alias for a release
(``renamed``).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_type_hints

import annotated_types
import typer
from pydantic import BaseModel
from typer.core import TyperCommand

from flows.params import PostParams, PreannotateParams
from prelabel.core.errors import PrelabelError
from prelabel.ingest.sources import has_images, no_images

__all__ = [
    "ADVANCED",
    "BASICS",
    "LABEL_STUDIO",
    "MODEL",
    "OPTION_NAMES",
    "OUTPUT",
    "PANELS",
    "AllowFailures",
    "ApiKey",
    "CacheDir",
    "InputDir",
    "LsUrl",
    "Manifest",
    "MaxPixels",
    "ModelName",
    "ModelOptionList",
    "PostOptions",
    "ProjectId",
    "Refresh",
    "TaskBatch",
    "flow_default",
    "flow_option",
    "images_source",
    "model_options",
    "option_name",
    "posting_options",
    "renamed",
    "use_api_key",
]

F = TypeVar("F", bound=Callable[..., Any])

BASICS, MODEL, LABEL_STUDIO, OUTPUT, ADVANCED = "Basics", "Model", "Label Studio", "Output", "Advanced"
PANELS = (BASICS, MODEL, LABEL_STUDIO, OUTPUT, ADVANCED)

# Parameters whose option is spelt otherwise: a repeatable option names one item; a file whose
# content becomes the parameter is named for what it holds; two short names people type often.
OPTION_NAMES = {
    "model_options": "--model-option",
    "formats": "--format",
    "categories": "--category",
    "label_map_file": "--label-map",
    "wait_seconds": "--wait",
    "review_set": "--set",
}


def option_name(field: str) -> str:
    """The command-line option that sets the flow parameter ``field``."""
    return OPTION_NAMES.get(field, "--" + field.replace("_", "-"))


def _bounds(model: type[BaseModel], field: str) -> tuple[Any, Any]:
    """The field's bounds as Typer's min and max (a strict bound too: the field refuses the edge)."""
    low = high = None
    for item in model.model_fields[field].metadata:
        if isinstance(item, annotated_types.Ge | annotated_types.Gt):
            low = item.ge if isinstance(item, annotated_types.Ge) else item.gt
        elif isinstance(item, annotated_types.Le | annotated_types.Lt):
            high = item.le if isinstance(item, annotated_types.Le) else item.lt
    return low, high


def flow_option(
    model: type[BaseModel], field: str, panel: str, *, flag: str | None = None, **extra: Any
) -> Any:
    """A Typer option that sets ``model``'s parameter ``field``, in the help panel ``panel``:
    named, explained and bounded as the parameter is. ``flag``: a ``--yes/--no`` declaration."""
    low, high = _bounds(model, field)
    description = model.model_fields[field].description
    declaration = flag or option_name(field)
    return typer.Option(declaration, help=description, rich_help_panel=panel, min=low, max=high, **extra)


def flow_default(model: type[BaseModel], field: str) -> Any:
    """The parameter's default, as the option's (an empty list or mapping: not given, None)."""
    value = model.model_fields[field].get_default(call_default_factory=True)
    return None if value in ([], {}) else value


ProjectId = Annotated[int, flow_option(PostParams, "project_id", BASICS)]
LsUrl = Annotated[str | None, flow_option(PostParams, "ls_url", LABEL_STUDIO)]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        rich_help_panel=LABEL_STUDIO,
        help="Label Studio token; default PRELABEL_LS_API_KEY (else LABEL_STUDIO_API_KEY): prefer those, "
        "a key on the command line stays in your shell's history.",
    ),
]
# Required here, though a deployment's run form offers the parameter's default: a command
# never picks a model for you.
ModelName = Annotated[str, flow_option(PreannotateParams, "model", BASICS)]
InputDir = Annotated[Path | None, flow_option(PreannotateParams, "input_dir", BASICS)]
Manifest = Annotated[Path | None, flow_option(PreannotateParams, "manifest", BASICS)]
ModelOptionList = Annotated[
    list[str] | None, flow_option(PreannotateParams, "model_options", MODEL, metavar="KEY=VALUE")
]
CacheDir = Annotated[str | None, flow_option(PreannotateParams, "cache_dir", MODEL)]
Refresh = Annotated[bool, flow_option(PreannotateParams, "refresh", MODEL)]
TaskBatch = Annotated[int | None, flow_option(PreannotateParams, "batch_size", ADVANCED)]
MaxPixels = Annotated[int | None, flow_option(PreannotateParams, "max_image_pixels", ADVANCED)]
AllowFailures = Annotated[
    bool,
    typer.Option("--allow-failures", rich_help_panel=OUTPUT, help="Exit 0 even when some images failed."),
]


@dataclass(frozen=True)
class PostOptions:
    """What ``run`` and ``post`` share: where to post, how to label, and the report files."""

    project_id: ProjectId
    import_new: Annotated[bool, flow_option(PostParams, "import_new", BASICS)] = flow_default(
        PostParams, "import_new"
    )
    dry_run: Annotated[bool, flow_option(PostParams, "dry_run", BASICS)] = flow_default(PostParams, "dry_run")
    ls_url: LsUrl = None
    api_key: ApiKey = None
    label_map_file: Annotated[Path | None, flow_option(PostParams, "label_map_file", LABEL_STUDIO)] = None
    plurals: Annotated[bool, flow_option(PostParams, "plurals", LABEL_STUDIO)] = flow_default(
        PostParams, "plurals"
    )
    fuzzy: Annotated[bool, flow_option(PostParams, "fuzzy", LABEL_STUDIO)] = flow_default(PostParams, "fuzzy")
    model_version: Annotated[str | None, flow_option(PostParams, "model_version", LABEL_STUDIO)] = None
    overwrite: Annotated[bool, flow_option(PostParams, "overwrite", LABEL_STUDIO)] = flow_default(
        PostParams, "overwrite"
    )
    show_predictions: Annotated[bool, flow_option(PostParams, "show_predictions", LABEL_STUDIO)] = (
        flow_default(PostParams, "show_predictions")
    )
    task_data: Annotated[
        str | None, flow_option(PostParams, "task_data", LABEL_STUDIO, metavar="COLUMN,...")
    ] = None
    output_dir: Annotated[Path, flow_option(PostParams, "output_dir", OUTPUT)] = Path(
        flow_default(PostParams, "output_dir")
    )
    unmatched_csv: Annotated[Path, flow_option(PostParams, "unmatched_csv", OUTPUT)] = Path(
        flow_default(PostParams, "unmatched_csv")
    )
    allow_failures: AllowFailures = False
    batch_size: TaskBatch = None
    wait_seconds: Annotated[float, flow_option(PostParams, "wait_seconds", ADVANCED)] = flow_default(
        PostParams, "wait_seconds"
    )
    masks: Annotated[bool | None, flow_option(PostParams, "masks", ADVANCED, flag="--masks/--no-masks")] = (
        None
    )
    polygon_tolerance: Annotated[float, flow_option(PostParams, "polygon_tolerance", ADVANCED)] = (
        flow_default(PostParams, "polygon_tolerance")
    )

    def flow_params(self) -> dict[str, Any]:
        """The options as flow parameters; the key goes to the environment, never a parameter."""
        use_api_key(self.api_key, self.ls_url)
        given = asdict(self)
        for name in ("api_key", "allow_failures"):
            given.pop(name)
        given["label_map_file"] = str(self.label_map_file) if self.label_map_file else None
        given["output_dir"], given["unmatched_csv"] = str(self.output_dir), str(self.unmatched_csv)
        given["task_data"] = [c.strip() for c in (self.task_data or "").split(",") if c.strip()]
        return given


def _panel(parameter: inspect.Parameter) -> int:
    """Where ``parameter``'s option is shown: its panel's place in ``PANELS``."""
    for meta in get_args(parameter.annotation)[1:]:
        panel = getattr(meta, "rich_help_panel", None)
        if panel in PANELS:
            return PANELS.index(panel)
    return len(PANELS)


def posting_options(command: F) -> F:
    """Add ``PostOptions``' fields to ``command``'s options, panel by panel; it receives them as
    ``shared``."""
    own = inspect.signature(command, eval_str=True)
    hints = get_type_hints(PostOptions, include_extras=True)
    empty = inspect.Parameter.empty
    extra = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=hints[f.name],
            default=empty if f.default is MISSING else f.default,
        )
        for f in fields(PostOptions)
    ]
    kept = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values() if p.name != "shared"
    ]
    # Keyword-only parameters may come in any order: the help shows the panels in this one, and
    # in each panel the command's own options before the shared ones.
    ordered = sorted([*kept, *extra], key=_panel)

    @functools.wraps(command)
    def wrapper(**given: Any) -> Any:
        shared = PostOptions(**{f.name: given.pop(f.name) for f in fields(PostOptions)})
        return command(shared=shared, **given)

    wrapper.__signature__ = own.replace(parameters=ordered)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in ordered}
    return wrapper  # type: ignore[return-value]


class _Renamed(TyperCommand):
    """A command that still takes its options' old spellings (hidden), saying the new one once."""

    names: ClassVar[Mapping[str, str]] = {}

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, [self._new(arg) for arg in args])

    def _new(self, arg: str) -> str:
        old, equals, value = arg.partition("=")
        new = self.names.get(old)
        if new is None:
            return arg
        typer.echo(f"prelabel: {old} is now {new}; the old name goes in a later release", err=True)
        return new + equals + value


def renamed(**names: str) -> type[TyperCommand]:
    """A command class taking old option names: ``renamed(out="--output-dir")`` takes ``--out``."""
    return type(
        "Renamed", (_Renamed,), {"names": {f"--{old.replace('_', '-')}": new for old, new in names.items()}}
    )


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


def images_source(
    input_dir: Path | None, manifest: Path | None, videos: bool = False
) -> tuple[str | None, str | None]:
    """(folder, manifest) as flow parameters; exactly one of them must be given (a folder with
    an image in it, or a video for a model that tracks ``videos``)."""
    if (input_dir is None) == (manifest is None):
        raise PrelabelError("give exactly one of --input-dir and --manifest")
    if input_dir is not None and not input_dir.is_dir():
        raise PrelabelError(
            f"--input-dir {input_dir}: {'not a folder' if input_dir.exists() else 'no such folder'}"
        )
    if input_dir is not None and videos:
        from prelabel.video.probe import VIDEO_SUFFIXES, no_videos  # the video wing loads numpy

        if not has_images(input_dir, VIDEO_SUFFIXES):
            raise no_videos(input_dir)
    if input_dir is not None and not videos and not has_images(input_dir):
        raise no_images(input_dir)
    if manifest is not None and not manifest.is_file():
        raise PrelabelError(f"--manifest {manifest}: no such file")
    return (str(input_dir) if input_dir else None), (str(manifest) if manifest else None)
