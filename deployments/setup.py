"""Create prelabel's work pools and concurrency limits on the Prefect server at PREFECT_API_URL.

``prelabel-cpu`` (orchestration, posting, pull-back, quality reports) and ``prelabel-gpu`` (inference), each a
process, Docker or Kubernetes pool; the GPU pool's Docker and Kubernetes base job templates
(in ``job_templates/``) request GPUs (a Docker device request; ``nvidia.com/gpu`` limits, a
node selector and tolerations). Also the global concurrency limit ``prelabel-dinox``, which
bounds DINO-X API calls across every run, and optionally the S3 bucket of the shared cache.

Lost runs: a worker or machine that dies (SIGKILL, OOM, eviction) leaves its flow run in
Running for good, so a scaled-out parent would wait for its shard forever. Every flow run on
these pools sends a heartbeat event every ``HEARTBEAT_SECONDS`` (Prefect's minimum; the pools'
default ``env``), and the automation ``prelabel-crash-silent-runs`` marks a run of a
``prelabel``-tagged deployment Crashed when no heartbeat (and no final state) followed the
last one within ``--crash-silent-after`` seconds; the parent then reruns that shard.
Safe to run again: existing pools and the automation are updated.

    python deployments/setup.py --gpu-type docker --dinox-limit 4
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.exceptions import ObjectAlreadyExists
from prefect.workers.process import ProcessWorker

TEMPLATES = Path(__file__).parent / "job_templates"
POOLS = {
    "prelabel-cpu": "CPU work: preannotate, export, post-predictions, pull-annotations, quality",
    "prelabel-gpu": "GPU work: infer-shard, export-shard",
}
HEARTBEAT_SECONDS = 30  # Prefect's floor (flows.heartbeat_frequency, ge=30)
SILENT_RUNS = "prelabel-crash-silent-runs"
FINAL_EVENTS = (
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
)


def base_job_template(kind: str, pool: str) -> dict[str, Any]:
    """The process worker's default, or our GPU template for Docker / Kubernetes; either way
    with the flow-run heartbeat in the default environment."""
    if kind == "process":
        template = ProcessWorker.get_default_base_job_template()
    else:
        path = TEMPLATES / f"{kind}-gpu.json"
        if not path.is_file():
            raise SystemExit(f"no {kind} job template for {pool}: {path}")
        template = json.loads(path.read_text())
    env = template["variables"]["properties"]["env"]
    env["default"] = {**env.get("default", {}), "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}
    return template


def silent_runs_automation(after_seconds: int) -> AutomationCore:
    """Prefect's zombie-flow automation ("Detect zombie flows" in its docs), limited to prelabel's
    runs: after each heartbeat of a run, expect another heartbeat or a final state within
    ``after_seconds``, else set the run Crashed."""
    return AutomationCore(
        name=SILENT_RUNS,
        description=f"A prelabel flow run without a heartbeat for {after_seconds} s is marked Crashed "
        "(its worker or machine is gone); scaled-out parents then rerun the shard.",
        enabled=True,
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.prelabel"},
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=after_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed",
                state=StateType.CRASHED,
                force=False,
                message=f"no heartbeat for {after_seconds} s: its worker is gone",
            )
        ],
    )


def upsert_automation(client: SyncPrefectClient, automation: AutomationCore) -> str:
    """Create ``automation``, or update the one of that name; says which."""
    existing = client.read_automations_by_name(automation.name)
    if existing:
        client.update_automation(existing[0].id, automation)
        return "updated"
    client.create_automation(automation)
    return "created"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-type", default="process", choices=["process"])
    parser.add_argument("--gpu-type", default="process", choices=["process", "docker", "kubernetes"])
    parser.add_argument("--dinox-limit", type=int, default=4, help="DINO-X batches running at once, all runs")
    parser.add_argument("--bucket", help="Create this S3 bucket (cache, exports) if missing; PRELABEL_S3_*")
    parser.add_argument(
        "--crash-silent-after",
        type=int,
        default=90,
        metavar="SECONDS",
        help=f"Mark a run Crashed after this long without a heartbeat (they come every "
        f"{HEARTBEAT_SECONDS} s; at least {HEARTBEAT_SECONDS + 15})",
    )
    args = parser.parse_args(argv)
    if args.crash_silent_after < HEARTBEAT_SECONDS + 15:
        parser.error(
            f"--crash-silent-after must be at least {HEARTBEAT_SECONDS + 15} s: heartbeats come "
            f"every {HEARTBEAT_SECONDS} s and need time to arrive"
        )
    kinds = {"prelabel-cpu": args.cpu_type, "prelabel-gpu": args.gpu_type}
    with get_client(sync_client=True) as client:
        for pool, kind in kinds.items():
            template = base_job_template(kind, pool)
            try:
                client.create_work_pool(
                    WorkPoolCreate(name=pool, type=kind, description=POOLS[pool], base_job_template=template)
                )
                print(f"created work pool {pool} ({kind})")
            except ObjectAlreadyExists:
                client.update_work_pool(
                    pool, WorkPoolUpdate(base_job_template=template, description=POOLS[pool])
                )
                print(f"updated work pool {pool} ({kind})")
        client.upsert_global_concurrency_limit_by_name("prelabel-dinox", args.dinox_limit)
        print(f"concurrency limit prelabel-dinox = {args.dinox_limit}")
        done = upsert_automation(client, silent_runs_automation(args.crash_silent_after))
        print(f"{done} automation {SILENT_RUNS} (Crashed after {args.crash_silent_after} s silent)")
    if args.bucket:
        from prelabel.core.settings import load_settings
        from prelabel.store.s3 import s3_client

        s3 = s3_client(load_settings())
        if args.bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=args.bucket)
        print(f"S3 bucket {args.bucket} ready")


if __name__ == "__main__":
    main()
