"""The command line as people meet it: options in panels, one `review` group, one name per
meaning (old spellings still taken), and every option that sets a flow parameter saying what
the Prefect UI's run form says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from flows.params import (
    ExportParams,
    FeaturesParams,
    InferParams,
    IngestParams,
    PostParams,
    PreannotateParams,
    PullParams,
    QualityParams,
)
from prelabel import __version__
from prelabel_cli.app import app
from prelabel_cli.options import PANELS, option_name
from prelabel_cli.reference.cli import visible_commands

ROOT = typer.main.get_command(app)
COMMANDS = {" ".join(path[1:]): command for path, command in visible_commands(ROOT)}
MAX_PER_PANEL = 10

# Each command that runs a flow, and the flow's parameters.
FLOW_COMMANDS: dict[str, type[BaseModel]] = {
    "run": PreannotateParams,
    "post": PostParams,
    "infer": InferParams,
    "export": ExportParams,
    "pull": PullParams,
    "quality": QualityParams,
    "ingest": IngestParams,
    "review features": FeaturesParams,
}
# Options with no parameter behind them: the key goes through the environment, never a stored
# parameter; failures decide only the exit code; export reads its label map from a file.
COMMAND_LINE_ONLY = {"--api-key", "--allow-failures", "export --label-map"}
# Parameters that only deployments set (shards, chunk sizes, report extras, fetch limits, the tasks
# `prelabel serve` hands over).
DEPLOYMENT_ONLY = {
    "api_key_block",
    "label_map",
    "post_chunk_size",
    "contact_sheet_size",
    "save_payloads",
    "shard_size",
    "infer_deployment",
    "export_deployment",
    "max_parallel_shards",
    "shard_retries",
    "frames_dir",
    "page_size",
    "timeout",
    "retries",
    "max_bytes",
    "task_ids",
}
DEPLOYMENT_ONLY_FOR = {"review features": {"revision", "model_batch_size", "max_image_pixels"}}


def options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden]


def _bounds(model: type[BaseModel], field: str) -> tuple[Any, Any]:
    low = high = None
    for item in model.model_fields[field].metadata:
        low = getattr(item, "ge", getattr(item, "gt", low))
        high = getattr(item, "le", getattr(item, "lt", high))
    return low, high


def _same(value: Any) -> Any:
    """Defaults as comparable values: a path as text, nothing given as None."""
    if value in (None, [], {}, ()):
        return None
    return [str(v) for v in value] if isinstance(value, list | tuple) else str(value)


@pytest.mark.parametrize("name", sorted(FLOW_COMMANDS))
def test_flow_parameters_and_their_options_share_name_default_and_help(name: str) -> None:
    model = FLOW_COMMANDS[name]
    by_option = {option_name(field): field for field in model.model_fields}
    covered = set()
    for option in options(COMMANDS[name]):
        flag = option.opts[0]
        if flag in COMMAND_LINE_ONLY or f"{name} {flag}" in COMMAND_LINE_ONLY:
            continue
        assert flag in by_option, f"prelabel {name} {flag}: no parameter of {model.__name__} is called so"
        field = by_option[flag]
        covered.add(field)
        info = model.model_fields[field]
        assert option.help == info.description, f"prelabel {name} {flag}: help differs from the parameter's"
        assert (option.min, option.max) == _bounds(model, field), f"prelabel {name} {flag}: bounds differ"
        # A command may require what a run form defaults (it never picks a model for you), and may
        # work out a default the parameter has not (quality's folder, from the project and version).
        if not option.required and not info.is_required():
            given = info.get_default(call_default_factory=True)
            assert _same(option.default) == _same(given), f"prelabel {name} {flag}: default differs"
    missing = set(model.model_fields) - covered - DEPLOYMENT_ONLY - DEPLOYMENT_ONLY_FOR.get(name, set())
    if name in ("post", "quality", "pull", "ingest"):  # these flows have no model settings
        missing -= {"model", "model_options", "cache_dir", "refresh"}
    assert missing == set(), (
        f"prelabel {name}: give these parameters an option, or list them as deployment-only"
    )


def test_a_changed_description_shows_in_the_help() -> None:
    """The help is read from the parameter when the app is built, not copied."""
    info = PreannotateParams.model_fields["fuzzy"]
    option = next(o for o in options(COMMANDS["run"]) if o.opts[0] == "--fuzzy")
    assert option.help is info.description


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_options_sit_in_panels_of_at_most_ten(name: str) -> None:
    panels: dict[str, list[str]] = {}
    for option in options(COMMANDS[name]):
        panels.setdefault(option.rich_help_panel or "", []).append(option.opts[0])
    if name == "":  # the app's own: --version and completion
        assert set(panels) == {""}, panels
        return
    assert "" not in panels, f"prelabel {name}: options outside a panel: {panels.get('')}"
    assert set(panels) <= set(PANELS), panels
    assert max(map(len, panels.values()), default=0) <= MAX_PER_PANEL, panels


def test_run_shows_the_panels_in_order() -> None:
    shown = [o.rich_help_panel for o in options(COMMANDS["run"])]
    assert list(dict.fromkeys(shown)) == list(PANELS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_an_example(name: str) -> None:
    assert "Example" in (COMMANDS[name].help or ""), f"prelabel {name}: its help has no example"


def test_the_review_commands_are_one_group() -> None:
    top = {path[1] for path, _ in visible_commands(ROOT) if len(path) == 2}
    assert "review" in top and not {"review-set", "features"} & top
    review = [" ".join(path[2:]) for path, _ in visible_commands(ROOT) if path[1:2] == ("review",)]
    assert review == ["", "create", "features", "next", "apply", "verifier", "serve"]


@pytest.mark.parametrize(
    ("args", "param", "value"),
    [
        # the output folder: one name, --output-dir, wherever an output folder is meant
        (["pull", "--project-id", "3", "--out", "exports"], "output_dir", Path("exports")),
        (["quality", "--project-id", "3", "--model-version", "v1", "--out=q"], "output_dir", Path("q")),
        (["infer", "--model", "ocr", "--out", "raw"], "output_dir", Path("raw")),
        (["samples", "--out", "demo"], "output_dir", Path("demo")),
        # a file is named for what it holds
        (["ingest", "--source", "urls.txt", "--out", "m.csv"], "manifest", Path("m.csv")),
        (["convert", "--input-dir", "a", "--config", "c.xml", "--out", "t.json"], "tasks", Path("t.json")),
        (["review", "create", "--references", "r.csv", "--out", "s.sqlite"], "review_set", Path("s.sqlite")),
        (
            ["review", "features", "--set", "s.sqlite", "--out", "f.parquet"],
            "features_file",
            Path("f.parquet"),
        ),
        (
            ["review", "verifier", "--set", "s", "--features", "f", "--out", "v.json"],
            "verifier",
            Path("v.json"),
        ),
        # the parameter's own name
        (["quality", "--project-id", "3", "--model-version", "v1", "--iou", "0.7"], "iou_threshold", 0.7),
        (["run", "--model", "ocr", "--project-id", "3", "--max-pixels", "9"], "max_pixels", 9),
        # old command spellings
        (
            ["review-set", "create", "--references", "r.csv", "--out", "s.sqlite"],
            "review_set",
            Path("s.sqlite"),
        ),
        (["features", "--set", "s.sqlite", "--out", "f.parquet"], "features_file", Path("f.parquet")),
    ],
)
def test_old_spellings_are_taken(
    args: list[str], param: str, value: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Parsed as the new names (nothing runs); the old name is told once on stderr."""
    command: Any = ROOT
    rest = args
    while hasattr(command, "commands") and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    context = command.make_context(" ".join(args[: len(args) - len(rest)]), rest)
    assert context.params[param] == value
    assert " is now --" in capsys.readouterr().err


def test_version() -> None:
    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0 and done.output.strip() == __version__


def test_completion_is_offered() -> None:
    done = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in done.output


@pytest.mark.parametrize("params", [PreannotateParams, PostParams])
def test_the_labels_csv_cannot_be_the_files_report(params: type[BaseModel], tmp_path: Path) -> None:
    """``output_dir/unmatched.csv`` is the unmatched files report: the labels appended to it first
    would be overwritten."""
    given = {"project_id": 1, "input_dir": str(tmp_path), "output_dir": str(tmp_path / "out")}
    with pytest.raises(ValueError, match="give the labels another file"):
        params.model_validate({**given, "unmatched_csv": str(tmp_path / "out" / "unmatched.csv")})
    kept = params.model_validate({**given, "unmatched_csv": str(tmp_path / "out" / "unmatched_labels.csv")})
    assert kept.unmatched_csv.endswith("unmatched_labels.csv")  # type: ignore[attr-defined]
