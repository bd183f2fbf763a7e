"""Sharded export end to end: a real Prefect server, the deployments, two process workers on
the GPU pool and one on the CPU pool, moto's S3 server as the target. The shards' objects
must equal a single-process export byte for byte, and a shard cut short must be completed
by a rerun that writes only what it had not written; a shard whose worker is killed (SIGKILL)
must be marked Crashed by the zombie automation and run again on the other worker."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from prelabel.core.settings import load_settings
from prelabel.store.s3 import s3_client
from tests.conftest import TINY_DETR_LABELS, run_prelabel, write_samples
from tests.e2e.test_deployments import (
    CRASH_AFTER,
    Stack,
    _wait_final,
    prefect_stack,
    run_with_a_shard_killed,
    slow_images,
)
from tests.integration.test_export import s3_env  # noqa: F401  (the fixture)
from tests.support.http_faults import Site, serve


def _objects(prefix: str) -> dict[str, bytes]:
    client = s3_client(load_settings())
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="pseudo", Prefix=prefix).get("Contents", [])]
    return {k.removeprefix(prefix): client.get_object(Bucket="pseudo", Key=k)["Body"].read() for k in keys}


def _run_export(stack: Stack, params: dict[str, object]) -> dict[str, Any]:
    return _wait_final(stack, stack.start_run("export/export", params))


def test_sharded_export_equals_one_process_and_a_cut_shard_is_completed(
    tmp_path: Path,
    s3_env: dict[str, str],  # noqa: F811
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    samples = write_samples(images)
    categories = sorted({label for s in samples for label in s.detections.labels})
    s3_client(load_settings()).create_bucket(Bucket="pseudo")

    # the reference: one process, no shards
    single = run_prelabel(
        "export",
        "--input-dir",
        str(images),
        "--model",
        "raw-files",
        "--to",
        "s3://pseudo/single",
        "--with-images",
        "--batch-size",
        "2",
        "--cache-dir",
        str(tmp_path / "single-cache"),
        "--output-dir",
        str(tmp_path / "single"),
        *[a for c in categories for a in ("--category", c)],
        env=s3_env,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    reference = _objects("single/")

    with prefect_stack(tmp_path, s3_env) as stack:
        stack.deploy_with_workers()

        params = {
            "input_dir": str(images),
            "model": "raw-files",
            "to": "s3://pseudo/sharded",
            "with_images": True,
            "batch_size": 2,
            "shard_size": 2,  # two shards of one batch each
            "max_parallel_shards": 2,
            "categories": categories,
            "output_dir": str(tmp_path / "sharded"),
        }
        final = _run_export(stack, params)
        assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]
        sharded = _objects("sharded/")
        assert sharded == reference and len(reference) > 4 * 3  # same keys, same bytes
        markers = {
            p: json.loads(p.read_text()) for p in (tmp_path / "cache" / "markers").glob("export-*.json")
        }
        # Each shard ran on a GPU worker; which one is Prefect's polling (a raw-files shard is over
        # before the other worker's next poll at times), so spreading is the scale-out test's.
        assert len(markers) == 2 and {m["worker"] for m in markers.values()} <= {"gpu-a", "gpu-b"}

        # a shard cut short: its marker and index never written, its COCO file and a mask missing
        # (the first shard, found by its index, not by what its marker says it wrote: on a starved
        # machine a shard can be run twice, and the second run writes nothing)
        path, marker = min(markers.items(), key=lambda item: item[1]["first_batch"])
        batch = f"index/batch_{marker['first_batch']:05d}.json"
        objects = json.loads(sharded[batch])["objects"]
        mask = sorted(k for k in objects if k.startswith("masks/"))[0]
        coco = next(k for k in objects if k.startswith("coco/"))
        client = s3_client(load_settings())
        for key in (batch, coco, mask):
            client.delete_object(Bucket="pseudo", Key=f"sharded/{key}")
        path.unlink()
        final = _run_export(stack, params)
        assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]
        assert _objects("sharded/") == reference
        redone = {
            p.name: json.loads(p.read_text()) for p in (tmp_path / "cache" / "markers").glob("export-*.json")
        }
        assert len(redone) == 2 and redone[path.name]["written"] == {"masks": 1, "coco": 1}
        assert sum(redone[path.name]["skipped"].values()) == len(objects) - 2
        others = {k: v for k, v in redone.items() if k != path.name}
        assert others == {p.name: m for p, m in markers.items() if p != path}  # not run again


def test_an_export_shard_whose_worker_is_killed_runs_again_and_each_image_is_exported_once(
    tmp_path: Path,
    s3_env: dict[str, str],  # noqa: F811
    tiny_detr: Path,
) -> None:
    s3 = s3_client(load_settings())
    s3.create_bucket(Bucket="pseudo")
    with prefect_stack(tmp_path, s3_env) as stack, serve(Site({}, slow=4.0)) as site:
        stack.deploy_with_workers("--crash-silent-after", str(CRASH_AFTER))
        manifest = slow_images(20, tmp_path, site)
        params = {
            "manifest": str(manifest),
            "model": "detr",
            "to": "s3://pseudo/killed",
            "with_images": True,
            "model_options": {"checkpoint": str(tiny_detr), "threshold": 0.0, "device": "cpu"},
            "batch_size": 2,
            "shard_size": 10,
            "max_parallel_shards": 2,
            "categories": sorted(TINY_DETR_LABELS.values()),
            "output_dir": str(tmp_path / "out"),
        }

        def wrote_a_batch(listed: list[str]) -> bool:
            """The shard has exported one of its images (so its first batch was started): the
            rerun must then keep what the killed run wrote."""
            names = tuple(uri.rsplit("/", 1)[-1] for uri in listed)
            found = s3.list_objects_v2(Bucket="pseudo", Prefix="killed/images/").get("Contents", [])
            return any(obj["Key"].endswith(names) for obj in found)

        shard, _ = run_with_a_shard_killed(
            stack, "export/export", params, site, tmp_path / "cache", wrote_a_batch
        )

    marker = json.loads((tmp_path / "cache" / "markers" / f"{shard}.json").read_text())
    assert marker["skipped"]  # what the killed run had written was kept, not written again
    objects = _objects("killed/")
    cocos = [json.loads(v) for k, v in objects.items() if k.startswith("coco/")]
    files = [image["file_name"] for coco in cocos for image in coco["images"]]
    ids = [image["id"] for coco in cocos for image in coco["images"]]
    assert len(cocos) == 10 and len(set(ids)) == len(ids) == 20
    # images/<content hash>-<source name>: each source image once, each written once
    assert Counter(f.split("-", 1)[1] for f in files) == Counter(list(site.images))
    assert {k for k in objects if k.startswith("images/")} == set(files)
