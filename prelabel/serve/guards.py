"""What stands before the routes: a bounded body, basic auth, JSON read without surprises.

- **Bodies** larger than the limit are refused with 413 before they are read whole: a declared
  ``Content-Length`` at once, a chunked body as soon as it passes the limit.
- **Basic auth** (when configured) on every route but ``/webhook``, which has its own shared
  secret (Label Studio's webhook sends headers, not basic auth), and ``/health``, which says
  only that the server is up (for probes); compared in constant time.
- **JSON** that does not parse, nests too deep, or has the wrong shape is a 400 or 422 naming
  where; the server never answers a malformed request with a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from prelabel.core.errors import RefusedRequestError

__all__ = ["BodyLimit", "basic_auth_ok", "parse_body"]

M = TypeVar("M", bound=BaseModel)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is a 413 (see the module docstring)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _refuse(
                send, 413, f"the body of {int(declared):,} bytes is over the {self.limit:,}-byte limit"
            )
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise RefusedRequestError(413, f"the body is over the {self.limit:,}-byte limit")
            return message

        await self.app(scope, bounded, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def basic_auth_ok(header: str | None, user: str, password: SecretStr) -> bool:
    """Whether an ``Authorization`` header carries exactly these basic-auth credentials."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given_user, _, given_password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    same_user = secrets.compare_digest(given_user.encode(), user.encode())
    same_password = secrets.compare_digest(given_password.encode(), password.get_secret_value().encode())
    return same_user and same_password


def parse_body(model: type[M], body: bytes) -> M:
    """``body`` as ``model``: 400 when it is not JSON, 422 (the first few problems, by place)
    when it has the wrong shape."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested past Python's limit
        raise RefusedRequestError(400, f"the body is not JSON ({str(exc)[:120]})") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        raise RefusedRequestError(422, f"{model.__name__}: {problems}") from exc
