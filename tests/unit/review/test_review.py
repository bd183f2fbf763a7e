"""The review engine without servers: sets, references, strategies, held-out draws, features
with tiny random-weight DINOv2-with-registers and SigLIP 2 models, and the features flow."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prelabel.core.errors import PrelabelError
from prelabel.ingest.fetch import Fetcher
from prelabel.labelstudio.client import Task
from prelabel.labelstudio.server import free_port
from prelabel.review.features import Embedder, crop_box, embed_items, read_features, write_features
from prelabel.review.learning import HOLDOUT_SHARE, held_out_accuracy, next_items, order, probabilities
from prelabel.review.sets import ReviewItem, ReviewSet, items_from_references, items_from_tasks
from prelabel.store.cache import LocalCache
from tests.conftest import encode_image, run_prelabel
from tests.support import python_prints


def _photo(folder: Path, name: str, seed: int, size: tuple[int, int] = (80, 60)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path = folder / name
    path.write_bytes(encode_image(Image.fromarray(pixels), "PNG"))
    return path


# -- sets ----------------------------------------------------------------------------------


def test_references_file_lines_boxes_labels_and_mistakes(tmp_path: Path) -> None:
    refs = tmp_path / "refs.txt"
    refs.write_text("# a comment\nimgs/a.jpg\n\n/abs/b.jpg, 1, 2, 30, 40\ns3://bucket/c.jpg,0,0,5,5,dog\n")
    items = items_from_references(refs, "car")
    assert [(i.image, i.box, i.label) for i in items] == [
        (str(tmp_path / "imgs/a.jpg"), None, "car"),
        ("/abs/b.jpg", (1.0, 2.0, 30.0, 40.0), "car"),
        ("s3://bucket/c.jpg", (0.0, 0.0, 5.0, 5.0), "dog"),
    ]
    mistakes = [
        ("a.jpg,1,2,3\n", "expected img_path"),
        ("a.jpg,5,5,1,1\n", "x1<x2"),
        ("a.jpg,a,b,c,d\n", "four numbers"),
        ("# nothing\n", "lists no images"),
    ]
    for bad, message in mistakes:
        refs.write_text(bad)
        with pytest.raises(PrelabelError, match=message):
            items_from_references(refs, "car")


def test_set_is_written_whole_keeps_items_and_answers(tmp_path: Path) -> None:
    path = tmp_path / "set.sqlite"
    items = [ReviewItem("a.jpg", "car", (1, 2, 3, 4), 0.9, 7, 11, "r1"), ReviewItem("b.jpg", "dog")]
    with ReviewSet.create(path, items, {"source": "references"}) as created:
        stored = created.items()
        assert [(i.id, i.image, i.box, i.score, i.task_id, i.prediction_id, i.region_id) for i in stored] == [
            (1, "a.jpg", (1.0, 2.0, 3.0, 4.0), 0.9, 7, 11, "r1"),
            (2, "b.jpg", None, None, None, None, None),
        ]
        assert created.labels() == ["car", "dog"]
        assert created.meta["source"] == "references" and created.meta["schema_version"] == "3"
        created.record(1, True, held_out=False, strategy="entropy")
        created.record(2, False, held_out=True, strategy="random")
        created.record(2, True, held_out=True, strategy="random")  # a changed answer replaces the old
        with pytest.raises(PrelabelError, match="no item 99"):
            created.record(99, True, held_out=False, strategy="entropy")
    with ReviewSet(path) as opened:
        answers = opened.answers()
    assert {k: (a.yes, a.held_out, a.strategy) for k, a in answers.items()} == {
        1: (True, False, "entropy"),
        2: (True, True, "random"),
    }
    with sqlite3.connect(path) as db:  # a plain SQLite file the review page can write to
        assert db.execute("SELECT count(*) FROM answers").fetchone() == (2,)
    with pytest.raises(PrelabelError, match="exists"):
        ReviewSet.create(path, items, {})
    assert [p.name for p in tmp_path.iterdir()] == ["set.sqlite"]  # no temp file left behind
    (tmp_path / "other.sqlite").write_bytes(b"not a database at all, just some bytes")
    with pytest.raises(PrelabelError, match="not a review set"):
        ReviewSet(tmp_path / "other.sqlite")


def _rect(label: str, x: float, score: float, rid: str, rotation: float = 0) -> dict[str, object]:
    return {
        "id": rid,
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": 200,
        "original_height": 100,
        "score": score,
        "value": {
            "x": x,
            "y": 10,
            "width": 20,
            "height": 50,
            "rotation": rotation,
            "rectanglelabels": [label],
        },
    }


def test_items_from_predictions_per_box_and_per_image() -> None:
    brush = {"type": "brushlabels", "value": {"format": "rle", "rle": [1], "brushlabels": ["person"]}}
    task = Task.from_json(
        {
            "id": 5,
            "data": {"image": "/data/upload/1/x.jpg"},
            "predictions": [
                {
                    "id": 40,
                    "model_version": "m1",
                    "score": 0.5,
                    "result": [_rect("car", 10, 0.9, "a"), _rect("car", 50, 0.3, "b"), brush],
                },
                {"id": 41, "model_version": "m2", "result": [_rect("dog", 10, 0.8, "c")]},
            ],
        }
    )
    items, skipped = items_from_tasks([task], "m1", "image", "box")
    assert [(i.label, i.box, i.score, i.task_id, i.prediction_id, i.region_id) for i in items] == [
        ("car", (20.0, 10.0, 60.0, 60.0), 0.9, 5, 40, "a"),
        ("car", (100.0, 10.0, 140.0, 60.0), 0.3, 5, 40, "b"),
    ]
    assert skipped == {"brushlabels (not a rectangle)": 1}
    items, _ = items_from_tasks([task], "m1", "image", "image")
    assert sorted((i.label, i.box, i.score) for i in items) == [("car", None, 0.9), ("person", None, 0.5)]
    no_image = Task.from_json(
        {
            "id": 6,
            "data": {},
            "predictions": [{"model_version": "m1", "result": [_rect("car", 10, 0.9, "a")]}],
        }
    )
    assert items_from_tasks([no_image], "m1", "image", "box") == ([], {"task without $image": 1})


# -- strategies ------------------------------------------------------------------------------

# A constructed case on one axis: answers say yes right of 0, no left of it; the candidates
# sit near the boundary (0.1), deep in yes (5), deep in no (-5) and in between (1.5, -1.5).
_TRAIN_X = [3.0, 2.0, 2.5, -3.0, -2.0, -2.5]
_CANDIDATES = [1.5, 0.1, 5.0, -1.5, -5.0]


def _constructed_set(tmp_path: Path) -> tuple[ReviewSet, dict[int, np.ndarray]]:
    xs = _TRAIN_X + _CANDIDATES
    items = [ReviewItem(f"{i}.jpg", "car", score=0.5) for i in range(len(xs))]
    review_set = ReviewSet.create(tmp_path / "set.sqlite", items, {})
    for item_id, x in enumerate(_TRAIN_X, start=1):
        review_set.record(item_id, x > 0, held_out=False, strategy="entropy")
    features = {i + 1: np.array([x, 0.0], np.float32) for i, x in enumerate(xs)}
    return review_set, features


def _first_picks(review_set: ReviewSet, features: dict[int, np.ndarray], **how: object) -> set[float]:
    """The candidate x of the first suggestion, over seeds, where it is the strategy's (not held out)."""
    picks = set()
    for seed in range(12):
        (first,) = next_items(review_set, features, "car", seed=seed, **how)  # type: ignore[arg-type]
        assert not first.cold_start
        if not first.held_out:
            picks.add(round(float(features[first.item.id][0]), 3))
    assert picks
    return picks


def test_strategies_order_a_constructed_case(tmp_path: Path) -> None:
    review_set, features = _constructed_set(tmp_path)
    with review_set:
        assert _first_picks(review_set, features, strategy="entropy") == {0.1}  # nearest the boundary
        assert _first_picks(review_set, features, strategy="max-prob") == {5.0}  # most likely yes
        assert _first_picks(review_set, features, strategy="max-prob", target="no") == {
            -5.0
        }  # most likely no
        assert len(_first_picks(review_set, features, strategy="random")) > 2
        ranked = next_items(review_set, features, "car", "max-prob", count=5, seed=1)
        probabilities_ = [s.p_yes for s in ranked if not s.held_out]
        assert probabilities_ == sorted(probabilities_, reverse=True)


def test_order_entropy_max_prob_and_class_swap() -> None:
    p = np.array([0.2, 0.55, 0.97, 0.01, 0.7])
    assert order(p, "entropy").tolist() == [1, 4, 0, 2, 3]
    assert order(p, "max-prob").tolist() == [2, 4, 1, 0, 3]
    assert order(p, "max-prob", target="no").tolist() == [3, 0, 1, 4, 2]
    assert sorted(order(p, "random", seed=3).tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(PrelabelError, match="unknown strategy"):
        order(p, "margin")  # type: ignore[arg-type]


def test_cold_start_uses_detector_scores_until_both_answers(tmp_path: Path) -> None:
    scores = [0.3, 0.95, 0.52, None, 0.1]
    items = [ReviewItem(f"{i}.jpg", "car", score=s) for i, s in enumerate(scores)]
    features = {i + 1: np.random.default_rng(i).normal(size=4).astype(np.float32) for i in range(5)}
    with ReviewSet.create(tmp_path / "s.sqlite", items, {}) as review_set:
        p, fitted = probabilities(
            np.stack(list(features.values())), [], [], np.array([0.3, 0.95, 0.52, np.nan, 0.1])
        )
        assert not fitted and p.tolist() == [0.3, 0.95, 0.52, 0.5, 0.1]
        seeds = [
            s
            for s in range(30)
            if not next_items(review_set, features, "car", "max-prob", seed=s)[0].held_out
        ]
        picks = {next_items(review_set, features, "car", "max-prob", seed=s)[0].item.id for s in seeds}
        assert picks == {2}  # highest score
        # Held-out answers never train: both classes held out leaves the cold start in place.
        review_set.record(1, True, held_out=True, strategy="random")
        review_set.record(5, False, held_out=True, strategy="random")
        assert next_items(review_set, features, "car", "entropy")[0].cold_start
        review_set.record(3, False, held_out=False, strategy="entropy")
        assert next_items(review_set, features, "car", "entropy")[0].cold_start  # one class only
        review_set.record(2, True, held_out=False, strategy="entropy")
        assert not next_items(review_set, features, "car", "entropy")[0].cold_start


@pytest.mark.slow
def test_held_out_share_is_a_tenth_drawn_at_random(tmp_path: Path) -> None:
    review_set, features = _constructed_set(tmp_path)
    with review_set:
        draws = [next_items(review_set, features, "car", "max-prob", seed=s)[0] for s in range(2000)]
        assert next_items(review_set, features, "car", seed=7) == next_items(
            review_set, features, "car", seed=7
        )
    held = [d for d in draws if d.held_out]
    assert abs(len(held) / len(draws) - HOLDOUT_SHARE) < 0.025
    # Held-out items are drawn uniformly from the unanswered, not the strategy's pick (x = 5).
    assert {round(float(features[d.item.id][0]), 3) for d in held} == set(_CANDIDATES)


def test_held_out_accuracy_counts_only_held_out_answers(tmp_path: Path) -> None:
    review_set, features = _constructed_set(tmp_path)
    with review_set:
        assert held_out_accuracy(review_set, features, "car").count == 0
        review_set.record(8, True, held_out=True, strategy="random")  # x = 5: right
        review_set.record(10, False, held_out=True, strategy="random")  # x = -5: right
        review_set.record(7, False, held_out=True, strategy="random")  # x = 1.5: wrong
        measured = held_out_accuracy(review_set, features, "car")
    assert measured.count == 3 and measured.accuracy == pytest.approx(2 / 3)


# -- features --------------------------------------------------------------------------------


def test_crop_box_keeps_the_stated_margin_clamped() -> None:
    image = Image.new("RGB", (100, 80))
    assert crop_box(image, (20, 20, 40, 60), 0.25).size == (30, 60)  # 5 px and 10 px each side
    assert crop_box(image, (0, 0, 100, 80), 0.5).size == (100, 80)  # clamped to the image
    assert crop_box(image, None, 0.5) is image
    with pytest.raises(PrelabelError, match="outside"):
        crop_box(image, (200, 200, 300, 300), 0.1)


@pytest.mark.parametrize("family", ["dinov2", "siglip2"])
def test_embed_items_with_tiny_models_and_the_cache(
    family: str, tiny_dinov2: Path, tiny_siglip2: Path, tmp_path: Path
) -> None:
    checkpoint = str(tiny_dinov2 if family == "dinov2" else tiny_siglip2)
    a, b = _photo(tmp_path, "a.png", 1), _photo(tmp_path, "b.png", 2, (50, 90))
    items = [
        ReviewItem(str(a), "car", id=1),
        ReviewItem(str(a), "car", (10, 10, 40, 30), id=2),
        ReviewItem(str(b), "car", (5, 5, 45, 80), id=3),
        ReviewItem(str(tmp_path / "gone.png"), "car", id=4),
        ReviewItem(str(a), "car", (500, 500, 600, 600), id=5),
    ]
    cache = LocalCache(tmp_path / "cache")
    embedder = Embedder(family, checkpoint, margin=0.1, batch_size=2, device="cpu")  # type: ignore[arg-type]
    first = embed_items(items, embedder, Fetcher(), cache)
    assert sorted(first.vectors) == [1, 2, 3] and (first.cached, first.computed) == (0, 3)
    assert sorted(e.file for e in first.errors) == [str(a), str(tmp_path / "gone.png")]
    for vector in first.vectors.values():
        assert vector.dtype == np.float32 and vector.shape == (16,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert not np.allclose(first.vectors[1], first.vectors[2])  # the crop is not the whole image
    # One at a time gives what the batch gave (padding never leaks between images).
    alone = embed_items(items[2:3], Embedder(family, checkpoint, device="cpu"), Fetcher(), None)  # type: ignore[arg-type]
    np.testing.assert_allclose(alone.vectors[3], first.vectors[3], atol=1e-5)
    again = embed_items(items, embedder, Fetcher(), cache)
    assert (again.cached, again.computed) == (3, 0)
    for key, vector in first.vectors.items():
        np.testing.assert_array_equal(again.vectors[key], vector)
    wider = Embedder(family, checkpoint, margin=0.5, device="cpu")  # type: ignore[arg-type]
    assert embed_items(items[:3], wider, Fetcher(), cache).computed == 2  # the box crops change
    path = write_features(tmp_path / "f.parquet", first.vectors, embedder.signature(), embedder.margin)
    back = read_features(path)
    assert sorted(back) == [1, 2, 3]
    np.testing.assert_array_equal(back[2], first.vectors[2])
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata
    assert meta[b"prelabel.model"] == f"features-{family}".encode() and meta[b"prelabel.margin"] == b"0.1"


def test_unknown_embedder_and_margin_are_mistakes() -> None:
    with pytest.raises(PrelabelError, match="unknown embedder"):
        Embedder("clip")  # type: ignore[arg-type]
    with pytest.raises(PrelabelError, match="margin"):
        Embedder("dinov2", margin=-1)


# -- offline ---------------------------------------------------------------------------------


def _offline_features(
    tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``prelabel features`` on a one-item set with an empty Hugging Face cache; its result and seconds."""
    if not (tmp_path / "set.sqlite").exists():
        ReviewSet.create(
            tmp_path / "set.sqlite", [ReviewItem(str(_photo(tmp_path, "a.png", 1)), "car")], {}
        ).close()
    started = time.monotonic()
    done = run_prelabel(
        "review",
        "features",
        "--set",
        str(tmp_path / "set.sqlite"),
        *args,
        env={"HF_HOME": str(tmp_path / "hf"), **env},
    )
    return done, time.monotonic() - started


@pytest.mark.slow
def test_features_without_a_network_fail_at_once_in_one_line(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: what no network looks like, on loopback
    cases = [
        # HF_HUB_OFFLINE: the cache only, and the default checkpoint is not in it.
        ((), {"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
        # No setting, but the Hub does not answer: asked once, then the cache.
        ((), {"HF_ENDPOINT": closed}, f"{closed} does not answer"),
        # A folder that is not there is a mistake, whatever the network.
        (("--checkpoint", str(tmp_path / "nowhere")), {"HF_ENDPOINT": closed}, "no folder of a saved model"),
    ]
    for args, env, message in cases:
        done, seconds = _offline_features(tmp_path, *args, **env)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and message in lines[0], lines
        assert seconds < 5, seconds
    done, _ = _offline_features(tmp_path, **{"HF_HUB_OFFLINE": "1"})
    assert "`hf download facebook/dinov2-with-registers-small --local-dir DIR`" in done.stderr


@pytest.mark.slow
def test_a_checkpoint_in_the_cache_loads_offline(tiny_dinov2: Path, tmp_path: Path) -> None:
    # The Hugging Face cache as a connected machine leaves it (a copied ~/.cache/huggingface).
    commit = "0" * 40
    repo = tmp_path / "hf" / "hub" / "models--acme--tiny-dinov2"
    shutil.copytree(tiny_dinov2, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    image = _photo(tmp_path, "a.png", 1)
    code = (
        "from PIL import Image; from prelabel.review.features import Embedder; "
        "embedder = Embedder('dinov2', 'acme/tiny-dinov2', device='cpu'); "
        f"print(embedder.embed([Image.open({str(image)!r})])[0].shape)"
    )
    assert python_prints(code, {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}).strip() == "(16,)"


def test_the_hub_is_asked_only_when_it_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from prelabel.predict.models.hub import read_locally

    class Hub(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert read_locally("acme/not-cached", None) is False  # the Hub answers: ask it
        assert read_locally(str(tmp_path), None) is True  # a folder: never the Hub
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(PrelabelError, match="HF_HUB_OFFLINE is set"):
            read_locally("acme/not-cached", None)
    finally:
        server.shutdown()
