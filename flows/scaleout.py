"""Scale-out: shards as runs of the ``infer-shard`` deployment on the GPU work pool.

The parent starts at most ``max_parallel_shards`` runs at a time with ``run_deployment``
(each waits for its child), skips shards whose marker is already in the shared cache (a
rerun), and reruns a shard whose run failed or crashed (a lost worker) up to
``shard_retries`` times. Then the parent's own inference finds every prediction in the
cache, so conversion and posting are exactly those of a single-process run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, cast

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.concurrency.sync import concurrency
from prefect.deployments import run_deployment

from flows.common import RunSizes
from flows.params import PreannotateParams, ShardParams
from prelabel.errors import PrelabelError
from prelabel.records import ModelSignature
from prelabel.sharding import shard_key, split_shards
from prelabel.store.cache import PredictionCache

__all__ = ["project_lock", "run_shards"]


@contextmanager
def project_lock(project_id: int) -> Iterator[None]:
    """One posting run per project at a time (a global concurrency limit of 1 per project)."""
    name = f"prelabel-project-{project_id}"
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, 1)
    with concurrency(name, occupy=1, strict=True):
        yield


def run_shards(
    params: PreannotateParams,
    images: Sequence[str],
    model_options: dict[str, Any],
    signature: ModelSignature,
    cache: PredictionCache,
    cache_location: str,
    sizes: RunSizes,
) -> dict[str, int]:
    """Run the shards not finished yet; raises when a shard still fails after its retries."""
    log = get_run_logger()
    if params.shard_size is None:
        raise ValueError("run_shards needs params.shard_size")
    shards = [(shard_key(s, signature), s) for s in split_shards(images, params.shard_size)]
    todo = [(key, shard) for key, shard in shards if cache.get_marker(key) is None]
    log.info("%d shards of up to %d images; %d already done", len(shards), params.shard_size,
             len(shards) - len(todo))  # fmt: skip

    def one(key: str, shard: list[str]) -> str | None:
        child = ShardParams(
            images=shard, shard=key, model=params.model, model_options=model_options,
            cache_dir=cache_location, refresh=params.refresh, max_image_pixels=sizes.max_pixels,
            batch_size=sizes.task_batch,
        )  # fmt: skip
        state = "not run"
        for attempt in range(params.shard_retries + 1):
            started = run_deployment(params.infer_deployment, parameters={"params": child.model_dump()},
                                     timeout=None, poll_interval=2)  # fmt: skip
            run = cast(FlowRun, started)
            if run.state is not None and run.state.is_completed():
                return None
            state = str(run.state.name) if run.state is not None else "unknown"
            log.warning("shard %s: run %s ended %s (try %d)", key, run.id, state, attempt + 1)
        return f"{key}: {state}"

    with ThreadPoolExecutor(params.max_parallel_shards) as pool:
        # each thread gets a copy of the run context, so children are linked to this flow run
        jobs = [pool.submit(contextvars.copy_context().run, one, key, shard) for key, shard in todo]
        failed = [f for f in (job.result() for job in jobs) if f is not None]
    if failed:
        raise PrelabelError(f"{len(failed)} shards failed after retries ({'; '.join(failed[:3])}); "
                            "rerun the flow: finished shards are skipped")  # fmt: skip
    return {"shards": len(shards), "ran": len(todo)}
