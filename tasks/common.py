"""What every task shares: the Label Studio connection and the retry policy."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from prelabel.core.errors import AmbiguousWriteError, LabelStudioUnavailableError
from prelabel.core.redact import redact
from prelabel.labelstudio.client import LabelStudioClient

__all__ = ["RETRY", "LabelStudioConnection", "as_task_retries", "is_transient", "only_transient"]

log = logging.getLogger("prelabel.core.retry")  # where every retry is said (sent to the run logs)

T = TypeVar("T")


@dataclass(frozen=True)
class LabelStudioConnection:
    """Where Label Studio is and the key to it (a SecretStr: never logged)."""

    url: str
    api_key: SecretStr
    timeout: float = 60.0

    def client(self) -> LabelStudioClient:
        return LabelStudioClient(self.url, self.api_key, timeout=self.timeout)


def is_transient(error: BaseException) -> bool:
    """A failure a retry can fix: network, 429, 5xx; never an ambiguous write (it may have
    been stored: the caller re-reads the state, never a blind repeat)."""
    if isinstance(error, AmbiguousWriteError):
        return False
    transient = (LabelStudioUnavailableError, httpx.TransportError, ConnectionError, TimeoutError)
    return isinstance(error, transient)


def only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a task only for failures a retry can fix (``is_transient``)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001  judged, not handled
        return is_transient(exc)
    return False


RETRY: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 10, 30],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": only_transient,
}


def as_task_retries(run: Callable[[], T], what: str) -> T:
    """``run()`` retried as ``RETRY`` retries a task, for work done outside one (the batch read
    ahead in a thread): transient failures only, the same waits and jitter, each retry logged."""
    delays: list[float] = RETRY["retry_delay_seconds"]

    def wait(state: RetryCallState) -> float:
        delay = delays[min(state.attempt_number, len(delays)) - 1]
        return float(delay * (1 + random.random() * RETRY["retry_jitter_factor"]))  # noqa: S311  (jitter)

    def say(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait_s = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s failed (%s: %s); retry %d of %d in %.1f s",
            what,
            type(error).__name__,
            redact(str(error)),
            state.attempt_number,
            RETRY["retries"],
            wait_s,
        )

    retrying = Retrying(
        stop=stop_after_attempt(RETRY["retries"] + 1),
        wait=wait,
        reraise=True,
        retry=retry_if_exception(is_transient),
        before_sleep=say,
    )
    return retrying(run)
