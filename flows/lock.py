"""One posting run per Label Studio project at a time, held as an expiring lease.

Two runs posting to one project at once could both see a task without predictions and both
post. So a run holds its project through a global concurrency limit of one slot, named for
the Label Studio server and the project (two servers' project 3 are different projects).
The slot is a lease that the holder's Prefect client renews while the run lives: Ctrl-C or
SIGTERM release it at once, and the lease of a run killed outright (SIGKILL, out of
memory, a lost worker) lapses after ``LEASE_SECONDS``, when the server's repossessor
frees the slot. Who holds the project and since when is kept in a Prefect variable of the
same name, so a run that has to wait can say so; after ``wait_seconds`` it gives up with
``ProjectBusyError``. Each holder overwrites the variable once it has the slot and leaves it
when done (deleting it at the end was one more write that SQLite refused under load, 503,
and Prefect's client retried after ~2 s); a record of a run that has ended names nobody.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.runtime import flow_run
from prefect.variables import Variable

from prelabel.core.errors import ProjectBusyError

__all__ = ["LEASE_SECONDS", "lock_name", "project_lock"]

LEASE_SECONDS = 60.0  # the shortest lease Prefect accepts: a killed run frees its project within ~75 s


def lock_name(ls_url: str, project_id: int) -> str:
    """The limit's (and holder variable's) name: the server's URL digest and the project id."""
    digest = hashlib.sha256(ls_url.rstrip("/").encode()).hexdigest()[:12]
    return f"prelabel-project-{digest}-{project_id}"


def _ensure_limit(name: str) -> bool:
    """Create the project's limit if needed; True when its slot is taken right now."""
    # ObjectAlreadyExists: another run created it between the client's read and its create.
    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectAlreadyExists):
            client.upsert_global_concurrency_limit_by_name(name, 1)
        limit = client.read_global_concurrency_limit_by_name(name)
    return limit.active_slots >= limit.limit


def _holder() -> dict[str, str]:
    return {
        "flow_run": str(flow_run.get_name() or "?"),
        "flow_run_id": str(flow_run.get_id() or ""),
        "host": socket.gethostname(),
        "pid": str(os.getpid()),
        "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def _describe(name: str) -> str:
    """Who holds the project, from the holder's record; "another run" when the record is
    missing or names a run that has ended (the new holder has not written its own yet)."""
    held = Variable.get(name, default=None)
    if not isinstance(held, dict) or not _running(str(held.get("flow_run_id") or "")):
        return "another run"
    run, pid, host, since = (held.get(key) for key in ("flow_run", "pid", "host", "since"))
    return f"flow run '{run}' (pid {pid} on {host}) since {since}"


def _running(flow_run_id: str) -> bool:
    """Whether that flow run is known to Prefect and not in a final state."""
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
    except (ValueError, ObjectNotFound):
        return False
    return state is not None and not state.is_final()


@contextlib.contextmanager
def project_lock(ls_url: str, project_id: int, wait_seconds: float) -> Iterator[None]:
    """Hold the project for this run; wait at most ``wait_seconds`` for another run to free it."""
    name = lock_name(ls_url, project_id)
    if _ensure_limit(name):
        get_run_logger().warning(
            "project %d at %s is held by %s; waiting up to %.0f s (a run that was killed frees it "
            "within %.0f s)",
            project_id,
            ls_url,
            _describe(name),
            wait_seconds,
            LEASE_SECONDS + 15,
        )
    with contextlib.ExitStack() as stack:
        with _quiet_timeout():
            try:
                stack.enter_context(
                    concurrency(
                        name,
                        occupy=1,
                        strict=True,
                        lease_duration=LEASE_SECONDS,
                        timeout_seconds=max(wait_seconds, 0.1),
                    )
                )
            except TimeoutError:
                raise ProjectBusyError(
                    f"project {project_id} at {ls_url} is still held by {_describe(name)} after "
                    f"{wait_seconds:.0f} s; wait for that run or stop it, or raise --wait"
                ) from None
        Variable.set(name, _holder(), overwrite=True)
        yield


@contextlib.contextmanager
def _quiet_timeout() -> Iterator[None]:
    """Prefect logs a timed-out acquisition as an ERROR with its traceback; ours is one line."""
    service = logging.getLogger("prefect._internal.concurrency")
    level = service.level
    service.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        service.setLevel(level)
