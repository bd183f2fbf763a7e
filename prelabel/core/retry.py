"""One HTTP retry policy for every client: Label Studio, DINO-X and the image fetcher.

What is transient: connection trouble, timeouts, and the answers 408, 425, 429, 500, 502,
503, 504. Waits grow exponentially from ``backoff`` up to ``max_backoff``, with jitter
(half to all of the step); a ``Retry-After`` in seconds lengthens a wait, up to
``max_retry_after``. ``deadline`` bounds one call, waits included. Every retry is logged
at WARNING on ``prelabel.core.retry``: method, URL without credentials or query, attempt, wait.

Reads (and other idempotent methods) are retried. A request that creates something is
retried only when it provably never reached the server (no connection was made, or the
server refused it before doing anything: 408, 425, 429), or when it carries an
idempotency key the server honours (``idempotent=True``). Any other failure after
sending raises ``AmbiguousWriteError``, which neither this policy nor the Prefect task
retry repeats: the server may have stored the request, so the caller re-reads the state
and decides.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)
from tenacity.stop import stop_base

from prelabel.core.errors import AmbiguousWriteError
from prelabel.core.redact import safe_url

__all__ = ["TRANSIENT_STATUS", "RetryPolicy", "TransientStatusError", "safe_url"]

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
# Answers that say the server did nothing with the request: a write may be sent again.
_REFUSED_STATUS = frozenset({408, 425, 429})
# Methods that may be repeated without changing the outcome (RFC 9110, 9.2.2).
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Transport failures raised before a single byte of the request left this machine.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_TRANSIENT_TRANSPORT = (
    httpx.NetworkError,
    httpx.TimeoutException,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    httpx.DecodingError,
)


class TransientStatusError(Exception):
    """An answer worth another try (429, 5xx, ...): carries it, and its ``Retry-After``."""

    def __init__(self, response: httpx.Response, reason: str | None = None) -> None:
        self.response = response
        self.status = response.status_code
        header = response.headers.get("Retry-After", "")
        self.retry_after = float(header) if header.replace(".", "", 1).isdigit() else None
        super().__init__(reason or f"HTTP {response.status_code}")


@dataclass(frozen=True)
class RetryPolicy:
    """How patient a client is; see the module docstring for what is retried."""

    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 60.0
    deadline: float | None = 300.0

    def call(self, method: str, url: str, send: Callable[[], T], *, idempotent: bool | None = None) -> T:
        """Run ``send`` (one attempt: returns, or raises an ``httpx.RequestError`` or
        ``TransientStatusError``) under the policy. The last failure is re-raised."""
        safe = self._safe(method, idempotent)
        retrying = Retrying(
            stop=self._stop(),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
            before_sleep=lambda state: _log_retry(method, url, self.retries + 1, state),
        )
        return retrying(lambda: self._attempt(method, url, safe, send))

    async def acall(
        self, method: str, url: str, send: Callable[[], Awaitable[T]], *, idempotent: bool | None = None
    ) -> T:
        """``call`` for coroutines (the fetcher's event loop)."""
        safe = self._safe(method, idempotent)
        retrying = AsyncRetrying(
            stop=self._stop(),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
            before_sleep=lambda state: _log_retry(method, url, self.retries + 1, state),
        )

        async def attempt() -> T:
            try:
                return await send()
            except (httpx.RequestError, TransientStatusError) as exc:
                raise _judge(method, url, safe, exc) from exc

        return await retrying(attempt)

    @staticmethod
    def _safe(method: str, idempotent: bool | None) -> bool:
        return method.upper() in _IDEMPOTENT_METHODS if idempotent is None else idempotent

    @staticmethod
    def _attempt(method: str, url: str, safe: bool, send: Callable[[], T]) -> T:
        try:
            return send()
        except (httpx.RequestError, TransientStatusError) as exc:
            raise _judge(method, url, safe, exc) from exc

    def _stop(self) -> stop_base:
        stop: stop_base = stop_after_attempt(self.retries + 1)
        return stop if self.deadline is None else stop | stop_before_delay(self.deadline)

    def _wait(self, state: RetryCallState) -> float:
        step = min(self.max_backoff, self.backoff * 2 ** (state.attempt_number - 1))
        delay = step * (0.5 + random.random() / 2)  # noqa: S311  (jitter, not security)
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, TransientStatusError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.max_retry_after))
        return float(delay)


def _judge(method: str, url: str, safe: bool, exc: Exception) -> Exception:
    """The failure as the policy sees it: retryable as is, or an ambiguous write."""
    if safe or isinstance(exc, _NEVER_SENT):
        return exc
    if isinstance(exc, TransientStatusError) and exc.status in _REFUSED_STATUS:
        return exc
    what = f"HTTP {exc.status}" if isinstance(exc, TransientStatusError) else f"{type(exc).__name__}: {exc}"
    return AmbiguousWriteError(method, safe_url(url), what)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, TransientStatusError):
        return True
    return isinstance(exc, _TRANSIENT_TRANSPORT)


def _log_retry(method: str, url: str, attempts: int, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "%s %s failed (%s); retry %d of %d in %.1f s",
        method,
        safe_url(url),
        error,
        state.attempt_number,
        attempts - 1,
        wait,
    )
