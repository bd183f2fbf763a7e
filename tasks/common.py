"""What every task shares: the Label Studio connection and the retry policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from prelabel.errors import AmbiguousWriteError, LabelStudioUnavailableError
from prelabel.labelstudio.client import LabelStudioClient

__all__ = ["RETRY", "LabelStudioConnection", "only_transient"]


@dataclass(frozen=True)
class LabelStudioConnection:
    """Where Label Studio is and the key to it (a SecretStr: never logged)."""

    url: str
    api_key: SecretStr
    timeout: float = 60.0

    def client(self) -> LabelStudioClient:
        return LabelStudioClient(self.url, self.api_key, timeout=self.timeout)


def only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a task only for failures a retry can fix: network, 429, 5xx; never an ambiguous write."""
    try:
        state.result()
    except AmbiguousWriteError:
        return False  # it may have been stored: the caller re-reads the state, never a blind repeat
    except (LabelStudioUnavailableError, httpx.TransportError, ConnectionError, TimeoutError):
        return True
    except Exception:  # noqa: BLE001  any other failure is final
        return False
    return False


RETRY: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 10, 30],
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": only_transient,
}
