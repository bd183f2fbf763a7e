"""The review page: a FastAPI app over a ``ReviewQueue`` and one HTML page with inline JS.

The browser only ever talks to this server: images are fetched here (``Fetcher``, with the
Label Studio key for ``/data/...`` files), so no key or bucket credential reaches the page.
With a token, every request must carry it (``?token=`` or ``Authorization: Bearer``).
"""

from __future__ import annotations

import io
import secrets
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from prelabel.errors import PrelabelError, SourceError
from prelabel.ingest.fetch import Fetcher, FetchOptions
from prelabel.review.page import PAGE
from prelabel.review.queue import ReviewQueue, Shown
from prelabel.settings import Settings

__all__ = ["create_app"]


class _Answer(BaseModel):
    reviewer: str
    item_id: int
    answer: bool | None = None  # None: skip


class _Undo(BaseModel):
    reviewer: str


def create_app(queue: ReviewQueue, settings: Settings | None = None, token: str | None = None) -> FastAPI:
    """The app; ``token`` (when given) is required on every request."""
    app = FastAPI(title="prelabel review", docs_url=None, redoc_url=None, openapi_url=None)
    fetcher = Fetcher(settings, FetchOptions(concurrency=1))

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Any:
        if token is not None:
            header = request.headers.get("authorization", "").removeprefix("Bearer ")
            given = request.query_params.get("token") or header
            if not secrets.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "missing or wrong token"}, status_code=401)
        return await call_next(request)

    def state(reviewer: str) -> dict[str, Any]:
        shown = queue.current(reviewer)
        return {
            "item": None if shown is None else _item_json(shown),
            "stats": _stats(queue),
            "strategy": queue.strategy,
        }

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return PAGE

    @app.get("/api/state")
    def get_state(reviewer: str) -> dict[str, Any]:
        return state(reviewer)

    @app.post("/api/answer")
    def post_answer(body: _Answer) -> dict[str, Any]:
        try:
            if body.answer is None:
                queue.skip(body.reviewer, body.item_id)
            else:
                queue.answer(body.reviewer, body.item_id, body.answer)
        except PrelabelError as exc:
            raise HTTPException(409, str(exc)) from exc
        return state(body.reviewer)

    @app.post("/api/undo")
    def post_undo(body: _Undo) -> dict[str, Any]:
        undone = queue.undo(body.reviewer)
        return {**state(body.reviewer), "undone": undone}

    @app.get("/image/{item_id}")
    def image(item_id: int) -> Response:
        try:
            uri = _uri(queue.item(item_id).image, settings)
        except StopIteration as exc:
            raise HTTPException(404, f"no item {item_id}") from exc
        data = fetcher.fetch_all([uri])[uri]
        if isinstance(data, SourceError):
            raise HTTPException(502, "the image could not be fetched (see the server log)")
        headers = {"Cache-Control": "private, max-age=3600"}
        return Response(data, media_type=_media_type(data), headers=headers)

    return app


def _uri(image: str, settings: Settings | None) -> str:
    if image.startswith("/data/") and settings is not None:
        return settings.ls_url.rstrip("/") + image
    return image


def _media_type(data: bytes) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            return Image.MIME.get(opened.format or "", "application/octet-stream")
    except (UnidentifiedImageError, OSError):
        return "application/octet-stream"


def _item_json(shown: Shown) -> dict[str, Any]:
    item = shown.item
    return {
        "id": item.id,
        "label": item.label,
        "box": list(item.box) if item.box else None,
        "score": item.score,
        "p_yes": shown.p_yes,
        "held_out": shown.held_out,
        "cold_start": shown.cold_start,
        "task_id": item.task_id,
    }


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
