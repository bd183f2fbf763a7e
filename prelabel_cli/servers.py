"""Commands that run servers: a local Label Studio, and the offline demo on top of it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from prelabel.labelstudio.server import LocalLabelStudio, free_port, port_is_free
from prelabel_cli import labelstudio, prefectserver
from prelabel_cli.collector import collector_paused
from prelabel_cli.options import BASICS
from prelabel_cli.runs import run_flow

__all__ = ["demo", "labelstudio_start", "labelstudio_stop", "server_start", "server_status", "server_stop"]

labelstudio_app = typer.Typer(
    help="""A local Label Studio, in its own virtual environment, on 127.0.0.1: for the demo and for
    trying prelabel without a server of your own.

    Example:

    prelabel labelstudio start
    """,
    no_args_is_help=True,
)
_DEMO_HOME = Path.home() / ".cache" / "prelabel" / "demo"
Port = Annotated[
    int, typer.Option("--port", rich_help_panel=BASICS, help="Port on 127.0.0.1 (a free one when taken).")
]


@labelstudio_app.command("start")
def labelstudio_start(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", rich_help_panel=BASICS, help="Label Studio's data.")
    ] = _DEMO_HOME / "label-studio",
    port: Port = 8080,
) -> None:
    """Install (once) and start Label Studio in the background; print its address, login and
    where its API token is.

    Example:

    prelabel labelstudio start --port 8080
    """
    _print_server(labelstudio.start(data_dir, _port(port)))


@labelstudio_app.command("stop")
def labelstudio_stop() -> None:
    """Stop the Label Studio that `prelabel labelstudio start` (or `prelabel demo`) left running.

    Example:

    prelabel labelstudio stop
    """
    typer.echo("stopped" if labelstudio.stop() else "no local Label Studio was running")


server_app = typer.Typer(
    help="""The local Prefect server that flow commands use when PREFECT_API_URL is not set: started
    by the first flow command, kept for the next ones.

    Example:

    prelabel server status
    """,
    no_args_is_help=True,
)


@server_app.command("start")
def server_start(
    port: Port = 4200,
) -> None:
    """Start the local Prefect server in the background (flow commands also start it when needed).

    Example:

    prelabel server start
    """
    server = prefectserver.start(port)
    typer.echo(f"Prefect server: {server.ui_url} (data in {server.home}); stop it with: prelabel server stop")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local Prefect server (runs in progress lose their server: stop them first).

    Example:

    prelabel server stop
    """
    server = prefectserver.stop()
    typer.echo(f"stopped the Prefect server at {server.ui_url}" if server else "no local Prefect server ran")


@server_app.command("status")
def server_status() -> None:
    """Which Prefect server flow commands use: PREFECT_API_URL's, or the local one (running or not).

    Example:

    prelabel server status
    """
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    if configured:
        typer.echo(f"PREFECT_API_URL is set: flow commands use {configured}")
        return
    server = prefectserver.running_server()
    if server is None:
        typer.echo("no local Prefect server is running; the next flow command starts one")
        return
    typer.echo(f"local Prefect server: {server.ui_url} (pid {server.pid}, data in {server.home})")


# This module's top-level commands; ``prelabel_cli.app`` adds them to ``prelabel`` in help order.
commands = typer.Typer()


@commands.command(rich_help_panel="Label Studio and servers")
def demo(
    home: Annotated[
        Path, typer.Option("--home", rich_help_panel=BASICS, help="Where the demo keeps its data.")
    ] = _DEMO_HOME,
    port: Port = 8080,
) -> None:
    """The offline demo: a local Label Studio, a project, sample images, OCR predictions, reports.

    Running it again finishes quickly and changes nothing.

    Example:

    prelabel demo
    """
    from flows.params import PreannotateParams

    with collector_paused():
        from flows.preannotate import preannotate
    from prelabel.core.atomic import atomic_write
    from prelabel.ingest.samples import LABEL_CONFIG, make_samples
    from prelabel.labelstudio.client import LabelStudioClient

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
    params = PreannotateParams(
        project_id=project.id,
        input_dir=str(images),
        model="ocr",
        import_new=True,
        model_version="ocr-demo",
        cache_dir=str(home / "cache"),
        output_dir=str(home / "report"),
        unmatched_csv=str(home / "report" / "unmatched_labels.csv"),
    )
    _print_server(server)
    typer.echo(f"Open {server.url}/projects/{project.id}/data to see the predictions.\n")
    run_flow(preannotate, params, show=lambda summary: str(summary.markdown()))


def _port(wanted: int) -> int:
    return wanted if port_is_free(wanted) else free_port()


def _print_server(server: LocalLabelStudio) -> None:
    typer.echo(
        f"Label Studio: {server.url}\n"
        f"  log in as {server.username} / {server.password.get_secret_value()} (a local demo account)\n"
        f"  API tokens for PRELABEL_LS_API_KEY: in {labelstudio.state_file()} (readable by you only)\n"
        "  stop it with: prelabel labelstudio stop"
    )
