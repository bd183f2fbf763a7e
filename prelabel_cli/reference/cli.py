"""The command-line reference: every visible command, its help and its options by panel."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import typer

from prelabel_cli.reference.fields import field_type, shown_value
from prelabel_cli.reference.markdown import GENERATED, code, table

__all__ = ["cli_page", "help_markdown", "visible_commands"]

_DEFAULT_PANEL = "Options"
# Typer's own command and parameter objects (its click), read by their attributes.
Command = Any


def _subcommands(command: Command, name: str) -> Iterator[tuple[str, Command]]:
    """A group's visible commands, in the order its ``--help`` lists them."""
    if not hasattr(command, "list_commands"):
        return
    context = typer.Context(command, info_name=name)
    for sub_name in command.list_commands(context):
        sub = command.get_command(context, sub_name)
        if sub is not None and not sub.hidden:
            yield sub_name, sub


def visible_commands(
    command: Command, path: tuple[str, ...] = ("prelabel",)
) -> Iterator[tuple[tuple[str, ...], Command]]:
    """(command path, command) for the app and every command under it that is not hidden."""
    yield path, command
    for name, sub in _subcommands(command, path[-1]):
        yield from visible_commands(sub, (*path, name))


def _type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    shown = field_type(param.type_descriptor.annotation)
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    limits = [f">= {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
    limits = [limit for limit in limits if limit]
    if param.multiple:
        shown = shown.removeprefix("list of ") + ", repeatable"
    return shown + (f", {', '.join(limits)}" if limits else "")


def _default(param: Any) -> str:
    if param.required:
        return "required"
    default = param.default
    if default is None or default in ((), []):
        return ""
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return str(param.opts[0] if default else param.secondary_opts[0])
    if isinstance(default, bool):
        return "on" if default else ""
    return shown_value(default)


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        return code(param.name.upper())
    return " / ".join(code(name) for name in [*param.opts, *param.secondary_opts])


def _help(param: Any) -> str:
    text = getattr(param, "help", None) or ""
    envvar = getattr(param, "envvar", None)
    return f"{text} Environment: {code(envvar)}." if isinstance(envvar, str) else text


def _options(command: Command) -> str:
    panels: dict[str, list[list[str]]] = {}
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        default_panel = "Arguments" if param.param_type_name == "argument" else _DEFAULT_PANEL
        panel = getattr(param, "rich_help_panel", None) or default_panel
        panels.setdefault(panel, []).append([_names(param), _type(param), _default(param), _help(param)])
    return "\n".join(
        f"**{panel}**\n\n" + table(["option", "type", "default", "what it does"], rows)
        for panel, rows in panels.items()
    )


def _commands(command: Command, path: tuple[str, ...]) -> str:
    rows = [
        [
            f"[{code(' '.join([*path, name]))}](#{'-'.join([*path, name])})",
            getattr(sub, "rich_help_panel", None) or "",
            sub.get_short_help_str(limit=200),
        ]
        for name, sub in _subcommands(command, path[-1])
    ]
    if not any(row[1] for row in rows):
        return table(["command", "what it does"], [[row[0], row[2]] for row in rows]) if rows else ""
    return table(["command", "group", "what it does"], rows)


def help_markdown(text: str) -> str:
    """A command's help as Markdown: the commands after "Example:" or "Examples:" in one block."""
    out: list[str] = []
    examples: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        line = " ".join(paragraph.split())
        if line in ("Example:", "Examples:"):
            examples = []
            out.append(line)
        elif line.startswith("prelabel ") and out and out[-1] in ("Example:", "Examples:"):
            examples.append(line)
        else:
            out.append(line)
    if examples:
        out.append("```bash\n" + "\n".join(examples) + "\n```")
    return "\n\n".join(out)


def _section(path: tuple[str, ...], command: Command) -> str:
    level = "#" * min(len(path) + 1, 4)
    name = " ".join(path)
    usage = " ".join(command.collect_usage_pieces(typer.Context(command, info_name=name)))
    parts = [
        f"{level} {name}",
        help_markdown(command.help or ""),
        f"```\n{name} {usage}\n```",
        _commands(command, path),
        _options(command),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def cli_page() -> str:
    """Every visible command of ``prelabel``, in the order ``--help`` lists them."""
    from prelabel_cli.app import app

    root = typer.main.get_command(app)
    intro = (
        "# Command line\n\n" + GENERATED + "\nEvery command of `prelabel`, as `--help` shows it. "
        "Options come in panels: the basics first, then the model, Label Studio, the output and "
        "the advanced ones. An option that sets a flow parameter says what the Prefect UI's run form "
        "says ([flows and their parameters](flows.md)). Exit codes are explained in "
        "[Exit codes](../concepts/exit-codes.md).\n\n"
        "**Shell completion**: `prelabel --install-completion` installs it for the shell you run it "
        "in (bash, zsh, fish or PowerShell; open a new shell afterwards); `prelabel --show-completion` "
        "prints the script instead.\n\n"
        "**Renamed, still taken for a release**: `--out` is `--output-dir` for folders "
        "(`infer`, `pull`, `quality`, `samples`) and is named for the file elsewhere (`ingest "
        "--manifest`, `convert --tasks`, `review create --set`, `review features --features`, "
        "`review verifier --verifier`); `--max-pixels` is `--max-image-pixels`, `quality --iou` is "
        "`--iou-threshold`; `prelabel review-set create` is `prelabel review create`, `prelabel "
        "features` is `prelabel review features`. The old spelling says the new one on stderr.\n"
    )
    return intro + "\n" + "\n".join(_section(path, command) for path, command in visible_commands(root))
