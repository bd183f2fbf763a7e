"""Answers back into Label Studio and the verifier, end to end against the real Label Studio:
predictions -> review set -> features -> answers -> ``review apply`` -> verifier -> a new run.

The case is built to be learnable by a random-weight embedder: every image holds one box over
a flat bright region (right: "yes") and one over random noise (wrong: "no").
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from flows.features import FeaturesParams, features
from flows.params import PreannotateParams
from flows.preannotate import preannotate
from prelabel.errors import PrelabelError
from prelabel.images import DEFAULT_MAX_PIXELS, load_image, sha256_bytes
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.records import Detections, save_raw_file
from prelabel.review.features import Embedder, Vector, crop_box
from prelabel.review.sets import ReviewSet, items_from_tasks
from prelabel.review.verifier import Verifier
from prelabel.settings import Settings
from prelabel.store.cache import LocalCache, PredictionCache, open_cache
from prelabel.store.s3 import s3_client
from tests.conftest import encode_image, run_prelabel
from tests.support.random_models import save_dinov2_registers

GOOD, BAD = (4.0, 4.0, 44.0, 60.0), (52.0, 4.0, 92.0, 60.0)  # pixels of a 96x64 image
LABEL = "person"


@pytest.fixture
def _label_studio_env(label_studio: LocalLabelStudio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRELABEL_LS_URL", label_studio.url)
    monkeypatch.setenv("PRELABEL_LS_API_KEY", label_studio.legacy_token.get_secret_value())


def _scenes(folder: Path, seeds: range) -> Path:
    """Images with their raw prediction files: a box over a flat region and one over noise."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        pixels = np.full((64, 96, 3), 230 + seed % 20, dtype=np.uint8)
        pixels[:, 48:] = rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)
        path = folder / f"scene_{seed}.png"
        path.write_bytes(encode_image(Image.fromarray(pixels), "PNG"))
        boxes = Detections(xyxy=np.array([GOOD, BAD]), scores=np.array([0.9, 0.8]), labels=(LABEL, LABEL))
        save_raw_file(folder / f"{path.name}.prelabel.json", boxes)
    return folder


def _params(
    project: Project, tmp_path: Path, images: Path, version: str, **extra: object
) -> PreannotateParams:
    return PreannotateParams.model_validate({
        "project_id": project.id, "input_dir": str(images), "model": "raw-files", "import_new": True,
        "model_version": version, "output_dir": str(tmp_path / "out"),
        "unmatched_csv": str(tmp_path / "out" / "unmatched.csv"), "batch_size": 3, **extra,
    })  # fmt: skip


def _results(client: LabelStudioClient, project: Project, version: str) -> dict[int, list[dict[str, object]]]:
    out = {}
    for task in client.iter_tasks(project.id, full=True):
        for prediction in task.predictions:
            if prediction.get("model_version") == version:
                out[task.id] = prediction["result"]
    return out


def _x(result: dict[str, object]) -> float:
    return float(result["value"]["x"])  # type: ignore[index]


@pytest.mark.usefixtures("prefect_server", "_label_studio_env")
def test_answers_back_into_label_studio_and_a_verifier_for_the_next_run(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, project: Project, tmp_path: Path
) -> None:
    # 1. Predictions: two boxes on each of 8 images.
    first = preannotate(_params(project, tmp_path, _scenes(tmp_path / "first", range(8)), "boxes-v1"))
    assert first.posted == 8
    original = _results(ls_client, project, "boxes-v1")

    # 2. A review set of the boxes, their features, and answers: yes to the flat box, no to noise.
    items, _ = items_from_tasks(ls_client.iter_tasks(project.id, full=True), "boxes-v1", "image", "box")
    meta = {"source": "project", "project_id": project.id, "model_version": "boxes-v1", "per": "box"}
    set_path = tmp_path / "people.sqlite"
    ReviewSet.create(set_path, items, meta).close()
    checkpoint = save_dinov2_registers(tmp_path / "tiny-dinov2")
    features(FeaturesParams(review_set=str(set_path), checkpoint=str(checkpoint), device="cpu",
                            cache_dir=str(tmp_path / "cache"), ls_url=label_studio.url))  # fmt: skip
    with ReviewSet(set_path) as review_set:
        stored = review_set.items()
        assert len(stored) == 16
        for number, item in enumerate(stored):
            assert item.box is not None
            review_set.record(item.id, item.box[0] < 48, held_out=number >= 12, strategy="entropy")

    # 3. review apply: <version>-reviewed without the rejected regions, the kept ones marked.
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = run_prelabel("review", "apply", "--set", str(set_path), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "boxes-v1-reviewed in project" in done.stdout and "8 created" in done.stdout
    assert "8 rejected results removed, 8 accepted regions marked" in done.stdout
    reviewed = _results(ls_client, project, "boxes-v1-reviewed")
    assert sorted(reviewed) == sorted(original)
    for task_id, results in reviewed.items():  # the flat box, as it was, marked accepted
        assert results == [{**r, "meta": {"reviewed": True}} for r in original[task_id] if _x(r) < 50]
        assert len(original[task_id]) == 2
    with (tmp_path / "people.answers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and sum(r["answer"] == "no" for r in rows) == 8
    assert {r["region_id"] for r in rows if r["answer"] == "no"} == {
        str(r["id"]) for results in original.values() for r in results if _x(r) > 50
    }
    again = run_prelabel("review", "apply", "--set", str(set_path), env=env)  # nothing new: nothing written
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 created, 0 updated in place, 8 unchanged" in again.stdout
    assert ls_client.model_versions(project.id)["boxes-v1-reviewed"] == 8

    # 4. The verifier, saved as plain numbers with its metrics.
    trained = run_prelabel("review", "verifier", "--set", str(set_path), "--features",
                           str(tmp_path / "people.dinov2.parquet"), "--name", "flat")  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    saved = tmp_path / "people.verifier.json"
    data = json.loads(saved.read_text())
    assert data["format"] == "prelabel-verifier/1" and data["embedder"] == "dinov2"
    model = data["labels"][LABEL]
    assert (model["trained_on"], model["positives"], model["held_out"]) == (12, 6, 4)
    assert len(model["weights"]) == 16 and model["held_out_accuracy"] == 1.0

    # 5. A new run with the verifier: the noise boxes are dropped, the report says so.
    run = preannotate(_params(project, tmp_path, _scenes(tmp_path / "second", range(20, 26)), "boxes-v2",
                              verifier=str(saved), min_verified=0.5))  # fmt: skip
    assert run.model_version == "boxes-v2-verified-flat-0.5"
    assert run.verified == {f"{LABEL} kept": 6, f"{LABEL} dropped": 6}
    assert f"| {LABEL} | 6 | 6 | 0 |" in run.markdown()
    posted = _results(ls_client, project, run.model_version)
    assert len(posted) == 6 and all(len(r) == 1 and _x(r[0]) < 50 for r in posted.values())
    # The cache (none for raw files) aside, a threshold of 0 keeps everything under its own version.
    everything = preannotate(_params(project, tmp_path, tmp_path / "second", "boxes-v2",
                                     verifier=str(saved), min_verified=0.0))  # fmt: skip
    assert everything.model_version == "boxes-v2-verified-flat-0" and everything.verified == {
        f"{LABEL} kept": 12
    }


def test_a_verifier_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "v.json").write_text('{"format": "pickle"}')
    with pytest.raises(PrelabelError, match="cannot read verifier"):
        Verifier.load(tmp_path / "v.json")


def test_verify_records_keeps_boxes_and_records_aligned_when_an_image_fails(tmp_path: Path) -> None:
    from prelabel.images import read_image_info
    from prelabel.records import PredictionRecord
    from prelabel.review.features import Embedder
    from prelabel.review.verifier import LabelModel, verify_records

    checkpoint = save_dinov2_registers(tmp_path / "tiny")
    folder = _scenes(tmp_path / "scenes", range(3))
    data = {str(p): p.read_bytes() for p in sorted(folder.glob("*.png"))}
    uris = list(data)
    data[uris[1]] = b"not an image"  # the middle image cannot be read again: an error row
    boxes = Detections(xyxy=np.array([GOOD, BAD, GOOD]), scores=np.ones(3), labels=(LABEL, "dog", LABEL))
    info = read_image_info(data[uris[0]], "scene_0.png")
    records = [PredictionRecord(info, boxes, uri=uri) for uri in uris]
    # "person": a model that says no to everything; "dog": no model (one class answered): kept.
    verifier = Verifier("all_no", "dinov2", str(checkpoint), None, 0.1,
                        {LABEL: LabelModel([0.0] * 16, -5.0, 4, 0, None, 0),
                         "dog": LabelModel(None, 0.0, 2, 2, None, 0)})  # fmt: skip
    embedder = Embedder("dinov2", str(checkpoint), margin=0.1, device="cpu")
    checked = verify_records(records, data, verifier, embedder, 0.5)
    assert [r.uri for r in checked.records] == [uris[0], uris[2]] and [e.file for e in checked.errors] == [
        uris[1]
    ]
    assert all(r.detections.labels == ("dog",) for r in checked.records)
    assert checked.counts == {f"{LABEL} dropped": 4, "dog kept": 2}
    assert verify_records(records[:1], data, verifier, embedder, 0.0).counts == {
        f"{LABEL} kept": 2,
        "dog kept": 1,
    }
    saved = Verifier.load(verifier.save(tmp_path / "v.json"))
    assert saved == verifier and saved.version_suffix(0.25) == "verified-all_no-0.25"


def test_run_checks_the_verifier_before_the_flow(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    base = ["run", "--input-dir", str(tmp_path / "images"), "--project-id", "1", "--model", "raw-files"]
    missing = run_prelabel(*base, "--verifier", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read verifier" in missing.stderr
    out_of_range = run_prelabel(*base, "--verifier", str(tmp_path / "nope.json"), "--min-verified", "2")
    assert out_of_range.returncode == 2 and "--min-verified" in out_of_range.stderr


class CountingEmbedder(Embedder):
    """The real embedder, counting the crops it embeds."""

    crops = 0

    def embed(self, images: Sequence[Any]) -> list[Vector]:
        self.crops += len(images)
        return super().embed(images)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_verdicts_are_cached_per_box_and_a_rerun_embeds_nothing(
    tmp_path: Path, where: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prelabel.images import read_image_info
    from prelabel.records import ModelSignature, PredictionRecord
    from prelabel.review.verdicts import verdict_name
    from prelabel.review.verifier import LabelModel, verify_records

    if where == "local":
        cache: PredictionCache = LocalCache(tmp_path / "cache")
    else:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        settings = Settings(s3_endpoint_url=request.getfixturevalue("s3_endpoint"), s3_region="us-east-1",
                            s3_access_key_id="test", s3_secret_access_key="test")  # type: ignore[arg-type]  # fmt: skip
        s3_client(settings).create_bucket(Bucket="verdicts")
        cache = open_cache("s3://verdicts/run", settings)
    checkpoint = save_dinov2_registers(tmp_path / "tiny")
    folder = _scenes(tmp_path / "scenes", range(4))
    data = {str(p): p.read_bytes() for p in sorted(folder.glob("*.png"))}
    model = ModelSignature("boxes", "1")
    boxes = Detections(xyxy=np.array([GOOD, BAD]), scores=np.ones(2), labels=(LABEL, "dog"))
    records = [
        PredictionRecord(read_image_info(raw, uri), boxes, model, uri=uri) for uri, raw in data.items()
    ]
    # "person": weights that split the flat crop from the noise one; "dog" maps onto it.
    embedder = CountingEmbedder("dinov2", str(checkpoint), margin=0.1, device="cpu")
    good, bad = embedder.embed(
        [crop_box(load_image(data[records[0].uri], "x").rgb, b, 0.1) for b in (GOOD, BAD)]
    )
    weights = good - bad
    bias = -float(weights @ (good + bad)) / 2
    verifier = Verifier("v", "dinov2", str(checkpoint), None, 0.1,
                        {LABEL: LabelModel(weights.tolist(), bias, 4, 2, None, 0)})  # fmt: skip
    dogs = LabelMap({"dog": LABEL})
    embedder.crops = 0

    def run(who: Verifier, threshold: float) -> tuple[list[list[list[float]]], Counter[str]]:
        checked = verify_records(records, data, who, embedder, threshold, dogs, cache=cache)
        assert not checked.errors
        return [r.detections.xyxy.tolist() for r in checked.records], checked.counts

    first, counts = run(verifier, 0.5)
    assert embedder.crops == 8 and not any(k.endswith("cached") for k in counts)
    assert counts[f"{LABEL} kept"] and counts[f"{LABEL} dropped"]  # the weights split the boxes
    # Rerun: nothing embedded, the same boxes dropped, every verdict from the cache.
    again, counts_again = run(verifier, 0.5)
    assert embedder.crops == 8 and again == first
    assert counts_again == {**counts, f"{LABEL} cached": 8}
    # Another threshold reuses the verdicts.
    everything, counts_all = run(verifier, 0.0)
    assert embedder.crops == 8 and counts_all == {f"{LABEL} kept": 8, f"{LABEL} cached": 8}
    assert all(len(kept) == 2 for kept in everything)
    # A corrupt entry is a miss, embedded again and rewritten.
    name = verdict_name(records[0].image.sha256, model, verifier.digest(), embedder)
    cache.put_marker(name, {"boxes": [[0, 0, 1, 1]], "labels": [LABEL], "p_yes": [2.0]})
    assert run(verifier, 0.5) == (first, {**counts, f"{LABEL} cached": 6}) and embedder.crops == 10
    assert cache.get_marker(name) is not None and run(verifier, 0.5)[0] == first and embedder.crops == 10
    # Other boxes for the same image and model (an output that varies): a miss for that record.
    records[1] = dataclasses.replace(records[1], detections=boxes[[1, 0]])
    assert run(verifier, 0.5)[1][f"{LABEL} cached"] == 6 and embedder.crops == 12
    # A retrained verifier (other weights, same name) never reuses the old verdicts.
    retrained = dataclasses.replace(
        verifier, labels={LABEL: LabelModel((-weights).tolist(), -bias, 4, 2, None, 0)}
    )
    flipped, counts_flipped = run(retrained, 0.5)
    assert embedder.crops == 20 and f"{LABEL} cached" not in counts_flipped and flipped != again
    assert counts_flipped[f"{LABEL} kept"] == counts[f"{LABEL} dropped"]


def test_a_run_batch_reuses_the_verdicts_beside_the_cached_predictions(tmp_path: Path) -> None:
    """``infer_batch`` (predictions from the cache) hands its prediction cache to the verifier."""
    from prelabel.pipeline import read_batch
    from prelabel.review.verifier import LabelModel, VerifyStep
    from tasks.inference import infer_batch, model_for

    checkpoint = save_dinov2_registers(tmp_path / "tiny")
    uris = [str(p) for p in sorted(_scenes(tmp_path / "scenes", range(3)).glob("*.png"))]
    options = {"checkpoint": str(tmp_path / "no-detr-needed")}  # every prediction comes from the cache
    adapter, cache = model_for("detr", options), LocalCache(tmp_path / "cache")
    boxes = Detections(xyxy=np.array([GOOD, BAD]), scores=np.ones(2), labels=(LABEL, LABEL))
    for uri in uris:
        cache.put(sha256_bytes(Path(uri).read_bytes()), adapter.signature(), boxes)
    weights = np.random.default_rng(0).normal(size=16)
    model = LabelModel(weights.tolist(), 0.0, 4, 2, None, 0)
    saved = Verifier("v", "dinov2", str(checkpoint), None, 0.1, {LABEL: model}).save(tmp_path / "v.json")

    def run() -> Counter[str]:
        batch = read_batch(uris, adapter, cache)
        result = infer_batch.fn(batch, "detr", options, cache, DEFAULT_MAX_PIXELS, VerifyStep(str(saved)))
        assert result.cached == 3 and not result.errors
        return result.verified

    first = run()
    assert sum(first.values()) == 6 and f"{LABEL} cached" not in first
    assert run() == {**first, f"{LABEL} cached": 6}
