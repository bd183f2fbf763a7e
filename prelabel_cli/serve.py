"""``prelabel serve`` (prelabel as Label Studio's ML backend) and ``prelabel project connect``.

``serve`` checks what it can first (the model and its options, Label Studio and its key, the
project to connect), writes its settings to ``PRELABEL_SERVE_*`` so that every worker process
reads the same, binds the port, and runs uvicorn on ``app_from_environment`` (one model per
process). With ``--connect`` a thread waits for the server to answer, then connects it to the
project (Label Studio calls ``/health`` and ``/setup`` on the way): a refusal stops the server
with one line. Work past a request's budget and new tasks go to the ``preannotate`` deployment of
the Prefect server at ``PREFECT_API_URL`` (or the local one ``prelabel server start`` runs).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from pydantic import SecretStr

from flows.params import PreannotateParams
from prelabel.core.errors import PrelabelError
from prelabel.core.settings import load_settings
from prelabel.labelstudio.backends import Backend, connect_backend
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.labelmap import Normalization, load_label_map
from prelabel.serve.settings import ServeSettings
from prelabel_cli import prefectserver
from prelabel_cli.checks import check_model, check_project
from prelabel_cli.exits import EXIT_INPUT_ERROR
from prelabel_cli.options import (
    ADVANCED,
    BASICS,
    LABEL_STUDIO,
    MODEL,
    OUTPUT,
    ApiKey,
    CacheDir,
    LsUrl,
    ModelName,
    ModelOptionList,
    flow_default,
    flow_option,
    model_options,
    use_api_key,
)
from prelabel_cli.project import project_app

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["app_from_environment", "project_connect", "serve"]

log = logging.getLogger("prelabel.serve")

_READY_SECONDS = 600.0  # the model loads before the server answers: a first download may be slow


def app_from_environment() -> FastAPI:
    """The app of one worker process, from ``PRELABEL_SERVE_*`` and the usual settings (uvicorn's
    factory: each worker makes its own, so each holds its own model)."""
    from flows.handoff import DeploymentHandoff
    from prelabel.serve import create_app, load_serve_settings

    _say_log_lines()  # a worker process of several starts with no logging set up
    settings = load_serve_settings()
    handoff = DeploymentHandoff(settings) if os.environ.get("PREFECT_API_URL") else None
    return create_app(settings, handoff=handoff)


def _say_log_lines() -> None:
    """prelabel's log lines (one per request, each hand-over) on stderr, with the time."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("prelabel").setLevel(logging.INFO)


# This module's top-level commands; ``prelabel_cli.app`` adds them to ``prelabel`` in help order.
commands = typer.Typer()


@commands.command(rich_help_panel="Label Studio and servers")
def serve(
    ctx: typer.Context,
    model: ModelName,
    host: Annotated[str, typer.Option("--host", rich_help_panel=BASICS, help="Address to listen on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, rich_help_panel=BASICS, help="Port (0: a free one).")
    ] = 9090,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=64, rich_help_panel=BASICS, help="Processes, one model each."),
    ] = 1,
    connect: Annotated[
        int | None,
        typer.Option(
            "--connect", min=1, rich_help_panel=BASICS, help="Connect this project once the server is up."
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            rich_help_panel=BASICS,
            help="The URL Label Studio reaches this server at (default http://HOST:PORT).",
        ),
    ] = None,
    model_option: ModelOptionList = None,
    label_map: Annotated[Path | None, flow_option(PreannotateParams, "label_map_file", MODEL)] = None,
    plurals: Annotated[bool, flow_option(PreannotateParams, "plurals", MODEL)] = flow_default(
        PreannotateParams, "plurals"
    ),
    cache_dir: CacheDir = None,
    segmenter: Annotated[str | None, flow_option(ServeSettings, "segmenter", MODEL)] = None,
    device: Annotated[str | None, flow_option(ServeSettings, "device", MODEL)] = None,
    interactive: Annotated[
        bool | None,
        typer.Option(
            "--interactive/--no-interactive",
            rich_help_panel=LABEL_STUDIO,
            help="Connect for clicks and boxes (default: when a segmenter is set, or sam3 is served).",
        ),
    ] = None,
    basic_auth_user: Annotated[
        str | None,
        typer.Option(
            "--basic-auth-user",
            rich_help_panel=LABEL_STUDIO,
            help="Require basic auth (its password from PRELABEL_SERVE_BASIC_AUTH_PASSWORD).",
        ),
    ] = None,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
    pull_to: Annotated[Path | None, flow_option(ServeSettings, "pull_out", OUTPUT, flag="--pull-to")] = None,
    budget: Annotated[float, flow_option(ServeSettings, "budget", ADVANCED)] = flow_default(
        ServeSettings, "budget"
    ),
    handoff: Annotated[
        bool,
        typer.Option(
            "--handoff/--no-handoff",
            rich_help_panel=ADVANCED,
            help="Hand what a request leaves to the preannotate deployment (needs PREFECT_API_URL "
            "or `prelabel server start`).",
        ),
    ] = True,
) -> None:
    """Serve a model to Label Studio as its ML backend: predictions when a task opens, "Retrieve
    predictions" without timeouts, clicks and boxes to masks, new tasks pre-annotated by event.

    A Label Studio that reaches this server on a private address must run with
    ML_BLOCK_LOCAL_IP=false and SSRF_PROTECTION_ENABLED=false (docs/label-studio-backend.md).

    Example:

    prelabel serve --model grounded-sam2 --connect 3
    """
    from prelabel.review.server import listen
    from prelabel.serve import load_serve_settings

    use_api_key(api_key, ls_url)
    options = model_options(model_option)
    _check_options(model, options)
    mapping = dict(load_label_map(label_map, Normalization(plurals=plurals)).mapping) if label_map else {}
    settings = load_settings()
    settings.ls_key_for(ls_url)  # the key exists, for this URL
    if connect is not None:
        check_project(ls_url, connect)
    given = {n for n in ctx.params if getattr(ctx.get_parameter_source(n), "name", "DEFAULT") != "DEFAULT"}
    env = {  # what the command line gives; a PRELABEL_SERVE_* variable of the user's stands otherwise
        "MODEL": model,
        "MODEL_OPTIONS": json.dumps(options) if "model_option" in given else None,
        "LABEL_MAP": json.dumps(mapping) if "label_map" in given else None,
        "PLURALS": json.dumps(plurals) if "plurals" in given else None,
        "BUDGET": str(budget) if "budget" in given else None,
        "SEGMENTER": segmenter,
        "DEVICE": device,
        "CACHE_DIR": cache_dir,
        "PULL_OUT": str(pull_to.resolve()) if pull_to else None,
        "BASIC_AUTH_USER": basic_auth_user,
        "STATE_DIR": os.environ.get("PRELABEL_SERVE_STATE_DIR")
        or str(prefectserver.state_dir() / f"serve-{port}"),
    }
    if connect is not None and not os.environ.get("PRELABEL_SERVE_WEBHOOK_SECRET"):
        env["WEBHOOK_SECRET"] = secrets.token_urlsafe(32)  # this server's, registered by the connect below
    for name, value in env.items():
        if value is not None:
            os.environ[f"PRELABEL_SERVE_{name}"] = value
    chosen = load_serve_settings()  # all of it checked now, before any process starts
    if "model_option" not in given:  # the options PRELABEL_SERVE_MODEL_OPTIONS gives, as run checks them
        _check_options(model, dict(chosen.model_options))
    prefect = _prefect_api(handoff)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    public = (url or f"http://{host}:{bound}").rstrip("/")
    _say_log_lines()
    processes = f"{workers} worker{'s' * (workers > 1)}"
    typer.echo(f"prelabel ML backend: {public} ({model}, {processes}, budget {chosen.budget:g} s)")
    off = "off (no PREFECT_API_URL): tasks past the budget are left for the next request"
    typer.echo(f"hand-over: {f'{prefect} (preannotate/preannotate)' if prefect else off}")
    runner = _Runner(workers, sock)
    failed: list[str] = []
    if connect is not None:
        prompts = chosen.segmenter_checkpoint is not None or chosen.model == "sam3"  # sam3: find-all
        wanted = prompts if interactive is None else interactive
        threading.Thread(
            target=_connect_when_up,
            args=(runner, public, connect, wanted, failed),
            name="prelabel-connect",
            daemon=True,
        ).start()
    runner.run()
    if failed:
        typer.echo(f"prelabel: error: {failed[0]}", err=True)
        sys.exit(EXIT_INPUT_ERROR)
    if not runner.started:
        raise PrelabelError("the ML backend did not start: see the log above")


@project_app.command("connect")
def project_connect(
    project_id: Annotated[int, typer.Argument(min=1, help="Label Studio project id.")],
    url: Annotated[
        str,
        typer.Option("--url", rich_help_panel=BASICS, help="Where Label Studio reaches the running backend."),
    ],
    interactive: Annotated[
        bool,
        typer.Option(
            "--interactive/--no-interactive", rich_help_panel=BASICS, help="For clicks and boxes too."
        ),
    ] = False,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Connect a running `prelabel serve` to a project: predictions when a task opens, its webhook.

    The webhook's secret and basic auth come from PRELABEL_SERVE_WEBHOOK_SECRET and
    PRELABEL_SERVE_BASIC_AUTH_USER / _PASSWORD, the same values the server runs with.

    Example:

    prelabel project connect 3 --url http://ml-backend:9090 --interactive
    """
    from prelabel.serve import load_serve_settings

    use_api_key(api_key, ls_url)
    check_project(ls_url, project_id)
    backend = _connect(url, project_id, interactive, load_serve_settings())
    typer.echo(_connected_line(backend, project_id))


def _check_options(model: str, options: dict[str, Any]) -> None:
    """The model and options as ``run`` checks them, and as a hand-over will pass them (no secret)."""
    PreannotateParams(project_id=1, task_ids=[1], model=model, model_options=options)
    check_model(model, options)


def _prefect_api(wanted: bool) -> str | None:
    """The Prefect API hand-overs go to: PREFECT_API_URL, else the running local server; None when off."""
    if not wanted:
        os.environ.pop("PREFECT_API_URL", None)
        return None
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    local = prefectserver.running_server()
    api = str(configured) if configured else local.api_url if local else None
    if api:
        os.environ["PREFECT_API_URL"] = api
    return api


class _Runner:
    """uvicorn on a bound socket, one process or several; ``stop`` from another thread."""

    def __init__(self, workers: int, sock: Any) -> None:
        import uvicorn

        self.config = uvicorn.Config(
            "prelabel_cli.serve:app_from_environment",
            factory=True,
            workers=workers,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )
        self.sock, self.workers = sock, workers
        self.server = uvicorn.Server(self.config)
        self._supervisor: Any = None
        self.started = False

    def run(self) -> None:
        from uvicorn.supervisors import Multiprocess

        try:
            if self.workers > 1:
                self._supervisor = Multiprocess(self.config, sockets=[self.sock])
                self.started = True  # the workers say their own failures in the log
                self._supervisor.run()
            else:
                self.config.load()
                self.server.run(sockets=[self.sock])
                self.started = self.started or self.server.started
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.should_exit.set()
        self.server.should_exit = True


def _connect_when_up(
    runner: _Runner, url: str, project_id: int, interactive: bool, failed: list[str]
) -> None:
    """Wait for ``url/health``, then connect; a failure is kept in ``failed`` and stops the server."""
    from prelabel.serve import load_serve_settings

    deadline = time.monotonic() + _READY_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2, auth=_auth()).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    runner.started = True
    try:
        backend = _connect(url, project_id, interactive, load_serve_settings())
    except PrelabelError as exc:
        failed.append(str(exc))
        runner.stop()
        return
    log.info(_connected_line(backend, project_id))


def _auth() -> tuple[str, str] | None:
    user, password = (
        os.environ.get("PRELABEL_SERVE_BASIC_AUTH_USER"),
        os.environ.get("PRELABEL_SERVE_BASIC_AUTH_PASSWORD"),
    )
    return (user, password) if user and password else None


def _connect(url: str, project_id: int, interactive: bool, serve_settings: Any) -> Backend:
    """Connect through a client of the configured Label Studio; Label Studio calls the backend back
    inside each request, so they get the backend's own patience (100 s), not the checks' 5 s."""
    settings = load_settings()
    user, password = serve_settings.basic_auth_user, serve_settings.basic_auth_password
    auth: tuple[str, SecretStr] | None = (user, password) if user and password else None
    with LabelStudioClient(settings.ls_url, settings.ls_key_for(None), timeout=120, retries=1) as client:
        return connect_backend(
            client,
            project_id,
            url,
            interactive=interactive,
            webhook_secret=serve_settings.webhook_secret,
            basic_auth=auth,
        )


def _connected_line(backend: Backend, project_id: int) -> str:
    kind = "interactive, " if backend.interactive else ""
    return (
        f"connected to project {project_id}: backend {backend.id} at {backend.url} ({kind}"
        f"{backend.state.lower()}, model version {backend.model_version}); predictions appear when a "
        "task opens"
    )
