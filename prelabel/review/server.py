"""The review page: a FastAPI app over a ``ReviewQueue`` and one HTML page with inline JS.

The browser only ever talks to this server: images are read here (``ImageSource``, with the
Label Studio key for ``/data/...`` files), so no key or bucket credential reaches the page.
With a token (shared, or one per reviewer: ``Team``), every request but the page itself (which
holds no data, and tells its reviewer when the token is wrong) must carry one (``?token=`` or
``Authorization: Bearer``). A reviewer's token names them; otherwise the page
sends the name its reviewer gave. A page acting on an item that is no longer its own gets 409
with the reviewer's current state, which the page shows at once.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from prelabel.core.errors import PrelabelError, SourceError
from prelabel.core.settings import Settings
from prelabel.labelstudio.matching import task_file_name
from prelabel.review.images import ImageSource
from prelabel.review.page import PAGE
from prelabel.review.queue import ReviewQueue, Shown, StaleItemError
from prelabel.review.team import Team, check_name

__all__ = ["create_app", "listen"]

_RECENT = 20


class _Answer(BaseModel):
    reviewer: str = ""
    item_id: int
    answer: bool | None = None  # None: skip


class _Undo(BaseModel):
    reviewer: str = ""
    item_id: int


class _Correct(BaseModel):
    reviewer: str = ""
    item_id: int
    answer: bool


def create_app(queue: ReviewQueue, settings: Settings | None = None, team: Team | None = None) -> FastAPI:
    """The app; ``team`` (when given) says which tokens let a request in and who the leads are."""
    team = team or Team()
    images = ImageSource(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            images.close()  # only once no request can be using it

    app = FastAPI(title="prelabel review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    ls_url = (queue.meta.get("ls_url") or (settings.ls_url if settings else "")).rstrip("/")
    project_id = queue.meta.get("project_id")

    @app.middleware("http")
    async def check_token(request: Request, call_next: Callable[[Request], Any]) -> Any:
        if request.url.path == "/":  # the page holds no data: it says so itself when the token is wrong
            request.state.reviewer = None
            return await call_next(request)
        header = request.headers.get("authorization", "").removeprefix("Bearer ")
        allowed, name = team.identify(request.query_params.get("token") or header)
        if not allowed:
            return JSONResponse({"detail": "missing or wrong token"}, status_code=401)
        request.state.reviewer = name
        return await call_next(request)

    def who(request: Request, claimed: str) -> str:
        named: str | None = request.state.reviewer
        if named is not None:
            return named
        try:
            return check_name(claimed)
        except PrelabelError as exc:
            raise HTTPException(400, str(exc)) from exc

    def item_json(shown: Shown) -> dict[str, Any]:
        item = shown.item
        link = (
            f"{ls_url}/projects/{project_id}/data?task={item.task_id}"
            if ls_url and project_id and item.task_id
            else None
        )
        return {
            "id": item.id,
            "label": item.label,
            "box": list(item.box) if item.box else None,
            "score": item.score,
            "p_yes": shown.p_yes,
            "held_out": shown.held_out,
            "cold_start": shown.cold_start,
            "task_id": item.task_id,
            "file": task_file_name(item.image),
            "task_url": link,
        }

    def state(name: str) -> dict[str, Any]:
        shown = queue.current(name)
        progress = queue.progress(name)
        out: dict[str, Any] = {
            "reviewer": name,
            "lead": team.is_lead(name),
            "item": None if shown is None else item_json(shown),
            "progress": {
                "items": progress.items,
                "answered": progress.answered,
                "held_by_others": progress.held_by_others,
                "skipped": progress.skipped,
            },
            "stats": _stats(queue),
            "strategy": queue.strategy,
            "features": queue.features is not None,
        }
        if team.is_lead(name):
            out["recent"] = [
                {
                    "item_id": r.item.id,
                    "label": r.item.label,
                    "file": task_file_name(r.item.image),
                    "reviewer": r.answer.reviewer,
                    "answer": r.answer.yes,
                    "answered_at": r.answer.answered_at,
                }
                for r in queue.recent(name, _RECENT)
            ]
        return out

    def stale(name: str, exc: StaleItemError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "state": state(name)}, status_code=409)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return PAGE

    @app.get("/api/me")
    def me(request: Request) -> dict[str, Any]:
        """Who the token names (None: the page asks), so a page knows whether to ask."""
        name: str | None = request.state.reviewer
        return {"reviewer": name, "lead": name is not None and team.is_lead(name)}

    @app.get("/api/state")
    def get_state(request: Request, reviewer: str = "") -> dict[str, Any]:
        return state(who(request, reviewer))

    @app.post("/api/answer", response_model=None)
    def post_answer(request: Request, body: _Answer) -> dict[str, Any] | JSONResponse:
        name = who(request, body.reviewer)
        try:
            if body.answer is None:
                queue.skip(name, body.item_id)
            else:
                queue.answer(name, body.item_id, body.answer)
        except StaleItemError as exc:
            return stale(name, exc)
        return state(name)

    @app.post("/api/undo", response_model=None)
    def post_undo(request: Request, body: _Undo) -> dict[str, Any] | JSONResponse:
        name = who(request, body.reviewer)
        try:
            queue.undo(name, body.item_id)
        except StaleItemError as exc:
            return stale(name, exc)
        return state(name)

    @app.post("/api/correct", response_model=None)
    def post_correct(request: Request, body: _Correct) -> dict[str, Any] | JSONResponse:
        name = who(request, body.reviewer)
        if not team.is_lead(name):
            raise HTTPException(403, f"{name} is not a lead: only leads correct others' answers")
        try:
            queue.correct(name, body.item_id, body.answer)
        except StaleItemError as exc:
            return stale(name, exc)
        return state(name)

    @app.get("/image/{item_id}")
    def image(item_id: int) -> Response:
        try:
            reference = queue.item(item_id).image
        except PrelabelError as exc:
            raise HTTPException(404, f"no item {item_id}") from exc
        try:
            data, kind = images.read(reference)
        except SourceError as exc:
            raise HTTPException(502, f"the image could not be read: {exc}") from exc
        return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})

    return app


def _stats(queue: ReviewQueue) -> list[dict[str, Any]]:
    return [
        {
            "label": s.label,
            "items": s.items,
            "answered": s.answered,
            "yes": s.yes,
            "positives_rate": s.positives_rate,
            "held_out_accuracy": s.held_out_accuracy,
            "held_out": s.held_out,
        }
        for s in queue.stats()
    ]


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port), before anything says where the page is;
    a busy port or an address not of this machine is one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise PrelabelError(f"--host {host}: not an address here ({exc.strerror})") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PrelabelError(
                f"port {port} on {host} is in use (another review page?): stop that or pass --port"
            ) from exc
        raise PrelabelError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    # Listening at once: a browser or script that follows the printed URL while the app still
    # starts waits in the backlog instead of being refused.
    sock.listen(2048)
    return sock
