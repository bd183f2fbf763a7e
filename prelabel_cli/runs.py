"""Running a flow from the command line: a progress bar, the result, where to see the run."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import typer

from prelabel.reports import RunSummary
from prelabel_cli.app import EXIT_IMAGES_FAILED

__all__ = ["run_flow", "run_posting_flow", "ui_hint"]


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


def ui_hint(flow_run_id: UUID | None) -> str:
    """Where the run can be seen in the Prefect UI (runs stay in Prefect's database)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    api = PREFECT_API_URL.value()
    if api:
        ui = PREFECT_UI_URL.value() or str(api).removesuffix("/api")
        return f"Prefect UI: {ui}/runs/flow-run/{flow_run_id}"
    return (
        "Prefect UI: the run is kept in Prefect's local database; run `prefect server start`, then open "
        f"http://127.0.0.1:4200/runs/flow-run/{flow_run_id}"
    )


def run_flow(
    flow: Callable[..., Any], params: Any, *, progress: bool = False, show: Callable[[Any], str] | None = None
) -> Any:
    """Run ``flow(params)`` here and return its result (its error is raised); print ``show(result)``,
    then where to see the run in the Prefect UI."""
    with _progress_bar() if progress else contextlib.nullcontext():
        state = flow(params, return_state=True)
    result = state.result()
    if show is not None:
        typer.echo(show(result))
    typer.echo(ui_hint(state.state_details.flow_run_id))
    return result


def run_posting_flow(flow: Callable[..., Any], params: Any, allow_failures: bool) -> RunSummary:
    """Run a posting flow under the progress bar, print its summary, exit 1 on failed images."""
    summary: RunSummary = run_flow(flow, params, progress=True, show=lambda s: str(s.markdown()))
    if summary.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)
    return summary
