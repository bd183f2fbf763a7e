"""Scale-out: shards as runs of the ``infer-shard`` deployment on the GPU work pool.

``run_shard_runs`` is the machinery (the ``export`` flow's ``export-shard`` runs use it too).
The parent starts at most ``max_parallel_shards`` runs at a time with ``run_deployment``
(each waits for its child, under an idempotency key, so that a retried request starts no
second run), skips shards whose marker is already in the shared cache (a
rerun), and reruns a shard whose run failed or crashed (a lost worker) up to
``shard_retries`` times. Then the parent's own inference finds every prediction in the
cache, so conversion and posting are exactly those of a single-process run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from prefect import get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.runtime import flow_run

from flows.common import RunSizes
from flows.params import PreannotateParams, ShardParams
from prelabel.core.errors import PrelabelError
from prelabel.predict.shards import shard_key, split_shards
from prelabel.records import ModelSignature
from prelabel.store.cache import PredictionCache

__all__ = ["run_shard_runs", "run_shards", "shard_images"]


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
    if params.shard_size is None:
        raise ValueError("run_shards needs params.shard_size")
    jobs = []
    for shard in split_shards(images, params.shard_size):
        key = shard_key(shard, signature)
        child = ShardParams(
            images=shard,
            shard=key,
            model=params.model,
            model_options=model_options,
            cache_dir=cache_location,
            refresh=params.refresh,
            max_image_pixels=sizes.max_pixels,
            batch_size=sizes.task_batch,
        )
        jobs.append((key, child.model_dump()))
    ran = run_shard_runs(
        params.infer_deployment, jobs, cache, params.max_parallel_shards, params.shard_retries
    )
    return {"shards": len(jobs), "ran": len(ran)}


def shard_run_key(parent: str, key: str, attempt: int) -> str:
    """The idempotency key of a shard's run: Prefect's client retries a request the server may
    have carried out (a timeout, a 503 from a busy SQLite server), and without a key each retry
    would start the shard again. One key per parent run, shard and deliberate retry."""
    return f"shard:{parent}:{key}:{attempt}"


def _by_reference(key: str, child: dict[str, Any], cache: PredictionCache) -> dict[str, Any]:
    """The child's image list moved into the shared cache: Prefect stores and shows parameters,
    and URIs can carry credentials (signed URLs)."""
    ref = f"lists/{key}"  # markers/lists/: beside the shards' own markers, never taken for one
    cache.put_marker(ref, {"images": list(child.get("images") or [])})
    return {**child, "images": [], "images_ref": ref}


def shard_images(images: list[str], ref: str | None, cache: PredictionCache) -> list[str]:
    """A shard's images: given, or read from the shared cache by reference."""
    if ref is None:
        return images
    stored = cache.get_marker(ref)
    listed = stored.get("images") if stored else None
    if not isinstance(listed, list):
        raise PrelabelError(f"shard images {ref!r} are not in the shared cache (cache_dir)")
    return [str(uri) for uri in listed]


def run_shard_runs(
    deployment: str,
    jobs: Sequence[tuple[str, dict[str, Any]]],
    cache: PredictionCache,
    max_parallel: int,
    retries: int,
) -> list[str]:
    """Run ``deployment`` once per job (shard key, its ``params``) whose marker is not in the
    cache yet; returns the keys run; raises when a shard still fails after ``retries``."""
    log = get_run_logger()
    todo = [(key, _by_reference(key, child, cache)) for key, child in jobs if cache.get_marker(key) is None]
    log.info("%d shards; %d already done", len(jobs), len(jobs) - len(todo))

    parent = str(flow_run.get_id())  # inside the parent's flow run (get_run_logger above needs one)

    def one(key: str, child: dict[str, Any]) -> str | None:
        state = "not run"
        for attempt in range(retries + 1):
            started = run_deployment(
                deployment,
                parameters={"params": child},
                timeout=None,
                poll_interval=2,
                idempotency_key=shard_run_key(parent, key, attempt),
            )
            run = cast(FlowRun, started)
            if run.state is not None and run.state.is_completed():
                return None
            state = str(run.state.name) if run.state is not None else "unknown"
            log.warning("shard %s: run %s ended %s (try %d)", key, run.id, state, attempt + 1)
        return f"{key}: {state}"

    with ThreadPoolExecutor(max_parallel) as pool:
        # each thread gets a copy of the run context, so children are linked to this flow run
        jobs_run = [pool.submit(contextvars.copy_context().run, one, key, child) for key, child in todo]
        failed = [f for f in (job.result() for job in jobs_run) if f is not None]
    if failed:
        raise PrelabelError(
            f"{len(failed)} shards failed after retries ({'; '.join(failed[:3])}); "
            "rerun the flow: finished shards are skipped"
        )
    return [key for key, _ in todo]
