"""Create prelabel's work pools and concurrency limits on the Prefect server at PREFECT_API_URL.

``prelabel-cpu`` (orchestration, posting, pull-back, quality reports) and ``prelabel-gpu`` (inference), each a
process, Docker or Kubernetes pool; the GPU pool's Docker and Kubernetes base job templates
(in ``job_templates/``) request GPUs (a Docker device request; ``nvidia.com/gpu`` limits, a
node selector and tolerations). Also the global concurrency limit ``prelabel-dinox``, which
bounds DINO-X API calls across every run, and optionally the S3 bucket of the shared cache.
Safe to run again: existing pools are updated.

    python deployments/setup.py --gpu-type docker --dinox-limit 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectAlreadyExists
from prefect.workers.process import ProcessWorker

TEMPLATES = Path(__file__).parent / "job_templates"
POOLS = {"prelabel-cpu": "CPU work: preannotate, export, post-predictions, pull-annotations, quality",
         "prelabel-gpu": "GPU work: infer-shard, export-shard"}  # fmt: skip


def base_job_template(kind: str, pool: str) -> dict[str, Any]:
    """The process worker's default, or our GPU template for Docker / Kubernetes."""
    if kind == "process":
        return ProcessWorker.get_default_base_job_template()
    template = TEMPLATES / f"{kind}-gpu.json"
    if not template.is_file():
        raise SystemExit(f"no {kind} job template for {pool}: {template}")
    return json.loads(template.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-type", default="process", choices=["process"])
    parser.add_argument("--gpu-type", default="process", choices=["process", "docker", "kubernetes"])
    parser.add_argument("--dinox-limit", type=int, default=4, help="DINO-X batches running at once, all runs")
    parser.add_argument("--bucket", help="Create this S3 bucket (cache, exports) if missing; PRELABEL_S3_*")
    args = parser.parse_args(argv)
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
    if args.bucket:
        from prelabel.settings import load_settings
        from prelabel.store.s3 import s3_client

        s3 = s3_client(load_settings())
        if args.bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=args.bucket)
        print(f"S3 bucket {args.bucket} ready")


if __name__ == "__main__":
    main()
