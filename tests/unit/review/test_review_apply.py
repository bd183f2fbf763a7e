"""Answers back into Label Studio and the verifier, end to end against the real Label Studio:
predictions -> review set -> features -> answers -> ``review apply`` -> verifier -> a new run.

The case is built to be learnable by a random-weight embedder: every image holds one box over
a flat bright region (right: "yes") and one over random noise (wrong: "no").
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from prelabel.core.errors import PrelabelError
from prelabel.core.images import DEFAULT_MAX_PIXELS, load_image, sha256_bytes
from prelabel.core.settings import Settings
from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.records import Detections, save_raw_file
from prelabel.review.features import Embedder, Vector, crop_box
from prelabel.review.verifier import Verifier
from prelabel.store.cache import LocalCache, PredictionCache, open_cache
from prelabel.store.s3 import s3_client
from tests.conftest import encode_image
from tests.support.random_models import save_dinov2_registers

GOOD, BAD = (4.0, 4.0, 44.0, 60.0), (52.0, 4.0, 92.0, 60.0)  # pixels of a 96x64 image
LABEL = "person"


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


def test_a_verifier_file_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "v.json").write_text('{"format": "pickle"}')
    with pytest.raises(PrelabelError, match="cannot read verifier"):
        Verifier.load(tmp_path / "v.json")


def test_verify_records_keeps_boxes_and_records_aligned_when_an_image_fails(tmp_path: Path) -> None:
    from prelabel.core.images import read_image_info
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
    verifier = Verifier(
        "all_no",
        "dinov2",
        str(checkpoint),
        None,
        0.1,
        {LABEL: LabelModel([0.0] * 16, -5.0, 4, 0, None, 0), "dog": LabelModel(None, 0.0, 2, 2, None, 0)},
    )
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


def test_run_checks_the_verifier_before_the_flow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.cli import prelabel

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(make_samples()[0].data)  # past the empty-folder check
    base = ["run", "--input-dir", str(tmp_path / "images"), "--project-id", "1", "--model", "raw-files"]
    missing = prelabel(capsys, monkeypatch, *base, "--verifier", str(tmp_path / "nope.json"))
    assert missing.code == 2 and "cannot read verifier" in missing.err
    out_of_range = prelabel(
        capsys, monkeypatch, *base, "--verifier", str(tmp_path / "nope.json"), "--min-verified", "2"
    )
    assert out_of_range.code == 2 and "--min-verified" in out_of_range.err


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
    from prelabel.core.images import read_image_info
    from prelabel.records import ModelSignature, PredictionRecord
    from prelabel.review.verdicts import verdict_name
    from prelabel.review.verifier import LabelModel, verify_records

    if where == "local":
        cache: PredictionCache = LocalCache(tmp_path / "cache")
    else:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(name, raising=False)
        settings = Settings(
            s3_endpoint_url=request.getfixturevalue("s3_endpoint"),
            s3_region="us-east-1",
            s3_access_key_id="test",
            s3_secret_access_key="test",
        )  # type: ignore[arg-type]
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
    verifier = Verifier(
        "v", "dinov2", str(checkpoint), None, 0.1, {LABEL: LabelModel(weights.tolist(), bias, 4, 2, None, 0)}
    )
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
    from prelabel.predict.batches import read_batch
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
