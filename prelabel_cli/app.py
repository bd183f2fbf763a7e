"""The ``prelabel`` app, built here from the command modules, and its error boundary.

The app is put together in one place and in one direction: this module imports the command
modules (``predict``, ``data``, ``quality``, ``review``, ``serve``, ``servers``, ``catalog``,
``project``), each of which declares its commands on its own ``typer.Typer`` objects and never
imports this module (an import-linter contract in pyproject.toml checks it). The order they are
added in is the order ``prelabel --help`` lists them.

Every user mistake ends as at most three lines on stderr and exit code 2: prelabel's own
errors, bad option values (click's usage errors, without the usage box) and invalid flow
parameters (pydantic's errors, one line each, named by their option). Anything else is
a bug and keeps its traceback. Exit codes (``exits``): 0 done, 1 some images failed, 2 a
mistake, 3 the project stayed held by another run past ``--wait``, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from prelabel import __version__
from prelabel.core.errors import AllImagesFailedError, PrelabelError, ProjectBusyError
from prelabel.core.redact import redact
from prelabel_cli import catalog, data, predict, project, quality, review, serve, servers
from prelabel_cli.exits import (
    EXIT_IMAGES_FAILED,
    EXIT_INPUT_ERROR,
    EXIT_PROJECT_BUSY,
    Terminated,
    interrupt_code,
)
from prelabel_cli.options import option_name

__all__ = ["app", "main"]


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


_MAX_LINES = 3

app = typer.Typer(
    name="prelabel",
    help="""Pre-annotate Label Studio projects with detection, segmentation, OCR, keypoint and
    classification models, as Prefect flows.

    Every command's --help has an example; the docs (docs/, or `mkdocs serve`) have guides and
    the full reference. Shell completion: prelabel --install-completion.

    Example:

    prelabel run --input-dir photos --project-id 3 --model ocr --import-new
    """,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """The app's own options."""


# Help order: what users run most first. Each module's top-level commands (with their panels),
# then the groups; a group's name and panel are given where it is added.
app.add_typer(predict.commands)
app.add_typer(data.commands)
app.add_typer(quality.commands)
app.add_typer(review.commands)
app.add_typer(serve.commands)
app.add_typer(servers.commands)
app.add_typer(catalog.commands)
app.add_typer(project.project_app, name="project", rich_help_panel="Label Studio and servers")
app.add_typer(review.review_app, name="review", rich_help_panel="Review and quality")
app.add_typer(review.review_set_app, name="review-set", hidden=True)
app.add_typer(servers.labelstudio_app, name="labelstudio", rich_help_panel="Label Studio and servers")
app.add_typer(servers.server_app, name="server", rich_help_panel="Label Studio and servers")


def validation_lines(error: ValidationError) -> list[str]:
    """One line per invalid parameter, named by its command-line option."""
    lines = []
    for item in error.errors():
        where = option_name(str(item["loc"][0])) if item["loc"] else "parameters"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return lines


def _fail(lines: list[str], code: int = EXIT_INPUT_ERROR) -> None:
    if len(lines) > _MAX_LINES:
        lines = [*lines[: _MAX_LINES - 1], f"... and {len(lines) - _MAX_LINES + 1} more"]
    for line in lines:
        typer.echo(f"prelabel: error: {redact(line)}", err=True)
    sys.exit(code)


def main() -> None:
    """Run the app; mistakes end as one line (three at most) on stderr and exit code 2."""
    # Prefect's telemetry and its notice stay off unless the user turns them on.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Ctrl-C interrupts even where the shell started us with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)

    try:
        code = app(standalone_mode=False)
    except TyperException as exc:  # click's usage errors, as typer carries them
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help())
            sys.exit(EXIT_INPUT_ERROR)
        hint = f"see '{context.command_path} --help'" if context is not None else "see 'prelabel --help'"
        _fail([exc.format_message(), hint] if hasattr(exc, "ctx") else [exc.format_message()])
    except typer.Abort:
        typer.echo("prelabel: aborted", err=True)
        sys.exit(EXIT_IMAGES_FAILED)
    except ValidationError as exc:
        _fail(validation_lines(exc))
    except ProjectBusyError as exc:
        _fail([str(exc)], EXIT_PROJECT_BUSY)
    except AllImagesFailedError as exc:
        _fail([str(exc)], EXIT_IMAGES_FAILED)
    except PrelabelError as exc:
        _fail([str(exc)])
    except KeyboardInterrupt as interrupt:
        typer.echo("prelabel: interrupted", err=True)
        sys.exit(interrupt_code(interrupt))
    sys.exit(code if isinstance(code, int) else 0)
