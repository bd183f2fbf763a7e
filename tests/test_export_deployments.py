"""Sharded export end to end: a real Prefect server, the deployments, two process workers on
the GPU pool and one on the CPU pool, moto's S3 server as the target. The shards' objects
must equal a single-process export byte for byte, and a shard cut short must be completed
by a rerun that writes only what it had not written."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prelabel.records import save_raw_file
from prelabel.samples import make_samples
from prelabel.settings import load_settings
from prelabel.store.s3 import s3_client
from tests.conftest import run_prelabel
from tests.test_deployments import PREFECT, Stack, _wait_final, prefect_stack
from tests.test_export import s3_env  # noqa: F401  (the fixture)


def _objects(prefix: str) -> dict[str, bytes]:
    client = s3_client(load_settings())
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="pseudo", Prefix=prefix).get("Contents", [])]
    return {k.removeprefix(prefix): client.get_object(Bucket="pseudo", Key=k)["Body"].read() for k in keys}


def _run_export(stack: Stack, params: dict[str, object]) -> dict[str, object]:
    started = stack.run(
        PREFECT, "deployment", "run", "export/export", "--params", json.dumps({"params": params})
    )
    assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", started.stdout)
    assert run_id, started.stdout
    return _wait_final(stack, run_id.group(1))


def test_sharded_export_equals_one_process_and_a_cut_shard_is_completed(
    tmp_path: Path,
    s3_env: dict[str, str],  # noqa: F811
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    samples = make_samples()
    for sample in samples:
        (images / sample.name).write_bytes(sample.data)
        save_raw_file(images / f"{Path(sample.name).stem}_dinox_preannot.json", sample.detections)
    categories = sorted({label for s in samples for label in s.detections.labels})
    s3_client(load_settings()).create_bucket(Bucket="pseudo")

    # the reference: one process, no shards
    single = run_prelabel("export", "--input-dir", str(images), "--model", "raw-files", "--to",
                          "s3://pseudo/single", "--with-images", "--batch-size", "1",
                          "--cache-dir", str(tmp_path / "single-cache"),
                          "--output-dir", str(tmp_path / "single"),
                          *[a for c in categories for a in ("--category", c)], env=s3_env)  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    reference = _objects("single/")

    with prefect_stack(tmp_path, s3_env) as stack:
        stack.deploy_with_workers()

        params = {"input_dir": str(images), "model": "raw-files", "to": "s3://pseudo/sharded",
                  "with_images": True,
                  "batch_size": 1, "shard_size": 1, "max_parallel_shards": 4, "categories": categories,
                  "output_dir": str(tmp_path / "sharded")}  # fmt: skip
        final = _run_export(stack, params)
        assert final["state"]["type"] == "COMPLETED", json.dumps(final["state"])[:2000]
        sharded = _objects("sharded/")
        assert sharded == reference and len(reference) > 4 * 3  # same keys, same bytes
        markers = {
            p: json.loads(p.read_text()) for p in (tmp_path / "cache" / "markers").glob("export-*.json")
        }
        assert len(markers) == 4 and {m["worker"] for m in markers.values()} == {"gpu-a", "gpu-b"}

        # a shard cut short: its marker and index never written, its COCO file and a mask missing
        path, marker = next((p, m) for p, m in markers.items() if m["written"].get("masks", 0) >= 2)
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
        assert len(redone) == 4 and redone[path.name]["written"] == {"masks": 1, "coco": 1}
        assert sum(redone[path.name]["skipped"].values()) == len(objects) - 2
        others = {k: v for k, v in redone.items() if k != path.name}
        assert others == {p.name: m for p, m in markers.items() if p != path}  # not run again
