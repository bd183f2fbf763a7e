"""Scale-out's shard runs, in a real flow run: each start of a shard's run carries an idempotency
key, so a request Prefect's client retries (a timeout, a 503 from a busy server) starts no second
run, while a deliberate retry of a failed shard does start a new one. The runs themselves are
the deployment tests' (tests/e2e/test_deployments.py); here ``run_deployment`` answers at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from prefect import flow
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run
from prefect.states import Completed, Crashed

import flows.scaleout
from prelabel.store.cache import LocalCache


@pytest.mark.usefixtures("prefect_server")
def test_each_shard_run_is_started_under_its_own_idempotency_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, Any]] = []

    def run_deployment(name: str, **kwargs: Any) -> FlowRun:
        """The first start of shard "a" crashes (a lost worker), everything else completes."""
        started.append({"name": name, **kwargs})
        shard = kwargs["parameters"]["params"]["shard"]
        crashed = shard == "a" and sum(s["parameters"]["params"]["shard"] == "a" for s in started) == 1
        return FlowRun(id=uuid4(), flow_id=uuid4(), state=Crashed() if crashed else Completed())

    monkeypatch.setattr(flows.scaleout, "run_deployment", run_deployment)
    cache = LocalCache(tmp_path / "cache")
    cache.put_marker("c", {"done": True})  # finished by an earlier run: not started again
    jobs = [(key, {"shard": key, "images": [f"{key}.jpg"]}) for key in ("a", "b", "c")]

    @flow
    def parent() -> tuple[list[str], str]:
        ran = flows.scaleout.run_shard_runs("infer-shard/infer-shard", jobs, cache, 1, 1)
        return ran, str(flow_run.get_id())

    ran, parent_id = parent()
    keys = [s["idempotency_key"] for s in started]
    assert sorted(ran) == ["a", "b"]
    assert sorted(keys) == [f"shard:{parent_id}:a:0", f"shard:{parent_id}:a:1", f"shard:{parent_id}:b:0"]
    assert all(s["name"] == "infer-shard/infer-shard" for s in started)
