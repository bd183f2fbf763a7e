"""``create_app(settings)``: prelabel as Label Studio's ML backend, a FastAPI app.

Routes: ``GET /health`` (and ``/``), ``POST /setup`` (the model version for the project's
labels), ``POST /predict`` (predictions within the budget; the rest handed to the
``preannotate`` deployment; a ``context`` makes it a click, a box or find-all), ``POST
/webhook`` (new tasks, changed annotations: debounced, then handed over), ``GET /versions``.
The model is created and loaded in the lifespan, once per process; nothing is loaded per
request. Every refusal is JSON with a 4xx and one line in ``detail``; the server keeps serving.
"""

from __future__ import annotations

import io
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import PIL.Image
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from prelabel.core.errors import ImageError, LabelConfigError, PrelabelError, RefusedRequestError, SourceError
from prelabel.core.images import read_image_info
from prelabel.core.settings import Settings, load_settings
from prelabel.labelstudio.backends import WEBHOOK_SECRET_HEADER
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.config import parse_label_config
from prelabel.predict.models.base import ImageItem
from prelabel.predict.models.prompted import PromptSegmenter, Sam2Prompter
from prelabel.serve.guards import BodyLimit, basic_auth_ok, parse_body
from prelabel.serve.handoff import Debouncer, Handoff, HandoffRegistry
from prelabel.serve.interactor import Interactor
from prelabel.serve.predictor import Answer, Models, Predictor
from prelabel.serve.projects import BadGatewayError, Projects
from prelabel.serve.protocol import PredictRequest, SetupRequest, SetupResponse, WebhookEvent, project_id_of
from prelabel.serve.settings import ServeSettings
from prelabel.store.cache import open_cache

__all__ = ["create_app"]

log = logging.getLogger("prelabel.serve")

_ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
# without basic auth: health probes (container healthchecks), and the webhook (its own secret)
_OPEN_PATHS = ("/", "/health", "/webhook")
_LONGEST_WAIT = 60.0  # seconds a stream of events is gathered at most before it is handed over


def create_app(
    settings: ServeSettings,
    ls: Settings | None = None,
    handoff: Handoff | None = None,
    segmenter: PromptSegmenter | None = None,
) -> FastAPI:
    """The ML backend (see the module docstring). ``handoff`` takes what a request or an event
    leaves over (none: it is only logged); ``segmenter`` answers clicks (default: a SAM 2 one when
    ``settings`` name a checkpoint)."""
    ls = ls or load_settings()
    client = LabelStudioClient(ls.ls_url, ls.require_ls_api_key(), timeout=ls.request_timeout, retries=2)
    projects = Projects(client, settings.projects)
    models = Models(settings, ls.infer_batch_size)
    cache = None if settings.model == "raw-files" else open_cache(settings.cache_dir or ls.cache_dir, ls)
    predictor = Predictor(models, cache, ls, client)
    if segmenter is None and settings.segmenter_checkpoint:
        segmenter = Sam2Prompter(settings.segmenter_checkpoint, device=settings.device)
    interactor = Interactor(predictor, segmenter, settings.find_all_control, settings.feature_cache)
    registry = HandoffRegistry(Path(settings.state_dir) / "handoffs.sqlite", settings.handoff_ttl)

    def hand_over(project_id: int, version: str, task_ids: Sequence[int], why: str) -> None:
        """Give ``task_ids`` to one preannotate run, unless a run already has them."""
        if not task_ids:
            return
        if handoff is None:
            log.warning(
                "project %d: %d tasks %s and no deployment takes them (PRELABEL_SERVE_PREANNOTATE_"
                "DEPLOYMENT): ask again",
                project_id,
                len(task_ids),
                why,
            )
            return
        claimed = registry.claim(project_id, version, task_ids)  # from now on no request answers them
        if claimed:  # the run starts after the answer: Prefect's API may take seconds
            starting.submit(start_run, project_id, version, claimed, why)

    def start_run(project_id: int, version: str, claimed: list[int], why: str) -> None:
        if handoff is None:  # hand_over checked it first
            return
        try:
            run = handoff.preannotate(project_id, claimed, version)
        except PrelabelError as exc:
            registry.release(project_id, version, claimed)
            log.error("project %d: handing %d tasks to a run failed: %s", project_id, len(claimed), exc)
            return
        registry.record(project_id, version, claimed, run)
        log.info(
            "project %d: %d tasks %s, handed to preannotate run %s: their %s predictions appear as it "
            "posts them",
            project_id,
            len(claimed),
            why,
            run,
            version,
        )

    def new_tasks(key: Hashable, task_ids: list[int]) -> None:
        project_id = int(str(key))
        served = models.for_config(projects.get(project_id).config)
        done = client.task_versions(project_id, task_ids)
        todo = [t for t in task_ids if t in done and served.version not in done[t]]
        hand_over(project_id, served.version, todo, "were imported")

    def changed_annotations(key: Hashable, _: list[int]) -> None:
        if handoff is not None:
            log.info("project %s: annotations changed, pull run %s", key, handoff.pull(int(str(key))))

    starting = ThreadPoolExecutor(max_workers=2, thread_name_prefix="prelabel-handoff")
    imports = Debouncer(new_tasks, settings.debounce, _LONGEST_WAIT)
    annotations = Debouncer(changed_annotations, settings.debounce, _LONGEST_WAIT)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_warm_up, settings, projects, models, predictor, segmenter)
        try:
            yield
        finally:
            imports.flush()  # gathered events are handed over, not lost with the process
            annotations.flush()
            starting.shutdown(wait=True)  # runs being started are started
            client.close()

    app = FastAPI(
        title="prelabel ML backend", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    _refusals(app)

    @app.middleware("http")
    async def basic_auth(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        user, password = settings.basic_auth_user, settings.basic_auth_password
        if user is None or password is None or request.url.path in _OPEN_PATHS:
            return await call_next(request)
        if basic_auth_ok(request.headers.get("authorization"), user, password):
            return await call_next(request)
        return JSONResponse(
            {"detail": "basic auth required"}, 401, {"WWW-Authenticate": 'Basic realm="prelabel"'}
        )

    @app.get("/")
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "UP", "model_class": "prelabel"}  # open to probes: says nothing else

    @app.post("/setup")
    async def setup(request: Request) -> SetupResponse:
        body = parse_body(SetupRequest, await request.body())
        project_id = project_id_of(body.project)
        config = parse_label_config(body.schema_)  # Label Studio's own call: its config, read only
        served = await run_in_threadpool(models.for_config, config)
        log.info("project %d: setup, model version %s", project_id, served.version)
        return SetupResponse(model_version=served.version)

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = parse_body(PredictRequest, await request.body())
        return await run_in_threadpool(predict_now, body)

    def predict_now(body: PredictRequest) -> dict[str, Any]:
        project_id = project_id_of(body.project)
        project = projects.get(project_id)
        if body.context is not None:
            if len(body.tasks) != 1:
                raise RefusedRequestError(
                    422, f"an interactive request is for one task, got {len(body.tasks)}"
                )
            return {"results": [interactor.answer(project, body.tasks[0], body.context)]}
        started = time.monotonic()
        served = models.for_config(project.config)
        held = registry.pending(project_id, served.version, [t.id for t in body.tasks])
        todo = [task for task in body.tasks if task.id not in held]
        done = predictor.answer(project, todo, settings.budget) if todo else Answer()
        _say(project_id, len(body.tasks), done, len(held), time.monotonic() - started)
        hand_over(
            project_id, served.version, done.deferred, f"not reached within the {settings.budget:g} s budget"
        )
        return {"results": [done.predictions.get(task.id, []) for task in body.tasks]}

    @app.post("/webhook")
    async def webhook(request: Request) -> dict[str, Any]:
        secret = settings.webhook_secret
        if secret is None:
            raise RefusedRequestError(
                403, "webhooks are off here: set PRELABEL_SERVE_WEBHOOK_SECRET and connect again"
            )
        given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
        if not secrets.compare_digest(given.encode(), secret.get_secret_value().encode()):
            raise RefusedRequestError(401, f"missing or wrong {WEBHOOK_SECRET_HEADER} header")
        event = parse_body(WebhookEvent, await request.body())
        if event.project is None:
            return {"status": "ignored", "action": event.action}
        project_id = event.project.id
        await run_in_threadpool(projects.get, project_id)  # a project not served here is refused
        if event.action == "TASKS_CREATED" and event.tasks:
            imports.add(project_id, [task.id for task in event.tasks])
            return {"status": "queued", "action": event.action, "tasks": len(event.tasks)}
        if event.action in _ANNOTATION_EVENTS and settings.pull_out:
            annotations.add(project_id, [0])
            return {"status": "queued", "action": event.action}
        return {"status": "ignored", "action": event.action}

    @app.get("/versions")
    async def versions() -> dict[str, Any]:
        return {"versions": models.versions()}

    return app


def _say(project_id: int, asked: int, done: Answer, held: int, seconds: float) -> None:
    """One log line per request, and one per task without a prediction now (its reason)."""
    log.info(
        "project %d: %d tasks in %.2f s: %d predicted (%d images from the cache, %d inferred), %d left "
        "for a run, %d with a run already, %d failed",
        project_id,
        asked,
        seconds,
        len(done.predictions),
        done.cached,
        done.inferred,
        len(done.deferred),
        held,
        len(done.failed),
    )
    for task_id, reason in list(done.failed.items())[:10]:
        log.warning("project %d: task %d not predicted: %s", project_id, task_id, reason)


def _refusals(app: FastAPI) -> None:
    """Each error prelabel raises on purpose, as JSON with its status and a one-line ``detail``."""

    def reply(status: int) -> Callable[[Request, Exception], JSONResponse]:
        def handler(_: Request, exc: Exception) -> JSONResponse:
            code = exc.status if isinstance(exc, RefusedRequestError) else status
            if code >= 500:
                log.error("%s", exc)
            return JSONResponse({"detail": str(exc)}, code)

        return handler

    app.add_exception_handler(RefusedRequestError, reply(400))
    app.add_exception_handler(SourceError, reply(422))  # the request's image: not readable, not allowed
    app.add_exception_handler(ImageError, reply(422))
    app.add_exception_handler(LabelConfigError, reply(422))
    app.add_exception_handler(BadGatewayError, reply(502))
    app.add_exception_handler(PrelabelError, reply(500))


def _warm_up(
    settings: ServeSettings,
    projects: Projects,
    models: Models,
    predictor: Predictor,
    segmenter: PromptSegmenter | None,
) -> None:
    """Load the weights now, not on the first request: the model of each project served (its
    labels prompt it), else the model as configured; and the segmenter."""
    started = time.monotonic()
    grey = io.BytesIO()
    PIL.Image.new("RGB", (64, 64), (128, 128, 128)).save(grey, "PNG")
    item = ImageItem(
        uri="warm-up.png", data=grey.getvalue(), info=read_image_info(grey.getvalue(), "warm-up.png")
    )
    configs = [projects.get(project_id).config for project_id in settings.projects]
    served = [models.for_config(config) for config in configs]
    with predictor.model_lock:  # predicted outside the cache: a grey square is no one's image
        for model in served:
            model.adapter.predict([item])
        if not served:
            try:
                models.for_config(parse_label_config(_NO_LABELS)).adapter.predict([item])
            except PrelabelError as exc:  # an open-vocabulary model needs a project's labels first
                log.info("the model loads on its first request (%s)", exc)
    if segmenter is not None:
        segmenter.embed(item.load())
    log.info(
        "model %s ready in %.1f s (versions: %s)",
        settings.model,
        time.monotonic() - started,
        ", ".join(models.versions()) or "per project",
    )


_NO_LABELS = '<View><Image name="image" value="$image"/></View>'
