"""Running a flow from the command line: a progress bar, the result, where to see the run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

import typer

from prelabel.core.errors import PrelabelError
from prelabel.report.summary import RunSummary
from prelabel_cli.exits import EXIT_IMAGES_FAILED, interrupt_code
from prelabel_cli.prefectserver import ensure_server

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.client.schemas.objects import FlowRun, State

    from tasks.reporting import Progress

__all__ = ["interrupted_line", "run_flow", "run_posting_flow", "ui_hint"]


@contextlib.contextmanager
def _progress(seen: list[Progress]) -> Iterator[None]:
    """Draw the flow's progress as a terminal bar; keep the last in ``seen``."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    from tasks.reporting import progress_listener

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Bar(*columns, transient=True) as shown:
        row = shown.add_task("", total=None)

        def listen(progress: Progress) -> None:
            seen[:] = [progress]
            total = progress.total or None  # 0: not known yet (the bar counts without an end)
            shown.update(row, completed=progress.done, total=total, description=progress.unit)

        with progress_listener(listen):
            yield


def interrupted_line(seen: list[Progress]) -> str:
    """What an interrupted command had done, and that a rerun continues from there."""
    if not seen:
        return "interrupted before any work was done; nothing was posted"
    last = seen[-1]
    posted = f", {last.posted} predictions posted" if last.posted else ""
    done = f"{last.done} of {last.total}" if last.total else f"{last.done}"
    return (
        f"interrupted after {done} {last.unit}{posted}; run the same command again to continue "
        "(finished work is skipped)"
    )


def ui_hint(flow_run_id: UUID | None) -> str:
    """Where the run can be seen in the Prefect UI."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    ui = settings.ui_url or str(settings.api.url).removesuffix("/api")
    return f"Prefect UI: {ui}/runs/flow-run/{flow_run_id}"


class _NoTracebackFor(logging.Formatter):
    """The console's formatter, less the traceback of errors the command line ends in one line
    (prelabel's own, an interrupt); the run's logs in the UI keep theirs."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PrelabelError | KeyboardInterrupt):
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return self.inner.format(record)


def _not_about_the_hook(record: logging.LogRecord) -> bool:
    """False for Prefect's two INFO lines on running ``_remember_run_id``: plumbing, not news
    (an error in it is still shown)."""
    return record.levelno > logging.INFO or "'_remember_run_id'" not in record.getMessage()


def _quiet_console() -> None:
    """Wrap the formatter of Prefect's console handlers once (they hang on the root logger)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    logging.getLogger("EventsWorker").setLevel(logging.ERROR)  # "still processing" at exit: not news

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(handler.formatter, _NoTracebackFor):
            handler.setFormatter(_NoTracebackFor(handler.formatter or logging.Formatter()))
            handler.addFilter(_not_about_the_hook)


def run_flow(flow: Flow[..., Any], params: Any, *, show: Callable[[Any], str] | None = None) -> Any:
    """Run ``flow(params)`` here and return its result (its error is raised); print ``show(result)``,
    then where to see the run in the Prefect UI. Ctrl-C ends it with one line and exit code 130."""
    ensure_server()
    _quiet_console()
    seen: list[Progress] = []
    runs: list[UUID] = []  # the flow run's id, for the link to it

    def _remember_run_id(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
        runs.append(flow_run.id)

    try:
        with _progress(seen):
            # The value the flow returned, never its state read back from the server: a state the
            # server answered with (a busy server, a retried request) carries no result.
            result = flow.with_options(on_running=[_remember_run_id])(params)
    except KeyboardInterrupt as interrupt:
        typer.echo(f"prelabel: {interrupted_line(seen)}", err=True)
        raise typer.Exit(interrupt_code(interrupt)) from None
    if show is not None:
        typer.echo(show(result))
    typer.echo(ui_hint(runs[0] if runs else None))
    return result


def run_posting_flow(flow: Flow[..., Any], params: Any, allow_failures: bool) -> RunSummary:
    """Run a posting flow under the progress bar, print its summary, exit 1 on failed images."""
    summary: RunSummary = run_flow(flow, params, show=lambda s: str(s.markdown()))
    if summary.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)
    return summary
