"""prelabel's own log lines (retries, skipped work) in the run's logs in the Prefect UI.

The domain package logs with the standard library only. Prefect forwards a logger to its
API when it is named in ``PREFECT_LOGGING_EXTRA_LOGGERS``; that setting is read once, when
Prefect configures logging, and a worker, a compose service or a job template may not
carry it. So the flows attach Prefect's API handler to the ``prelabel`` logger in code,
on import, however the flow is started. Records logged outside a flow or task run (the
command line's checks before a run) stay on the console.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

__all__ = ["route_prelabel_logs"]


def _in_a_run(record: logging.LogRecord) -> bool:
    return bool(getattr(record, "flow_run_id", None) or FlowRunContext.get() or TaskRunContext.get())


def route_prelabel_logs() -> None:
    """Send ``prelabel`` records at INFO and above to the current run's logs (idempotent)."""
    logger = logging.getLogger("prelabel")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not any(isinstance(handler, APILogHandler) for handler in logger.handlers):
        handler = APILogHandler()
        handler.addFilter(_in_a_run)
        logger.addHandler(handler)
