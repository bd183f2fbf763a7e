"""The prediction cache (local and S3 on moto's server), the model registry and adapters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from prelabel.convert.masks import mask_to_coco
from prelabel.core.errors import ImageError, PredictionFileError, PrelabelError, SettingsError
from prelabel.core.images import read_image_info
from prelabel.ingest.samples import SIGNS, make_samples
from prelabel.predict.batches import infer_items, infer_read, read_batch, read_items, reuse_earlier
from prelabel.predict.models import ImageItem, ModelAdapter, available_models, create_model
from prelabel.records import Choice, Detections, Keypoint, ModelSignature, save_raw_file
from prelabel.store.cache import LocalCache

SIGNATURE = ModelSignature("test-model", "1", {"threshold": 0.5})
DETECTIONS = Detections(
    xyxy=[[1, 2, 3, 4]],
    scores=[0.5],
    labels=("car",),
    masks=(mask_to_coco(np.eye(4, dtype=np.uint8)),),
    texts=("hi",),
)


def _same(a: Detections, b: Detections) -> bool:
    return (
        np.array_equal(a.xyxy, b.xyxy)
        and a.labels == b.labels
        and a.masks == b.masks
        and a.texts == b.texts
        and np.array_equal(a.scores, b.scores)
    )


def test_local_cache_round_trip(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path)
    assert cache.get("ab" * 32, SIGNATURE) is None
    cache.put("ab" * 32, SIGNATURE, DETECTIONS)
    again = cache.get("ab" * 32, SIGNATURE)
    assert again is not None and _same(again, DETECTIONS)
    assert cache.get("ab" * 32, ModelSignature("test-model", "2")) is None  # another signature: a miss
    assert not list(tmp_path.rglob("*.tmp"))
    # A corrupt entry is a miss, not a crash.
    next(tmp_path.rglob("*.json")).write_text("{not json")
    assert cache.get("ab" * 32, SIGNATURE) is None


def test_registry() -> None:
    assert {"ocr", "raw-files"} <= set(available_models())
    with pytest.raises(SettingsError, match="unknown model 'nope'; available: "):
        create_model("nope")
    with pytest.raises(SettingsError, match="model 'ocr'"):
        create_model("ocr", no_such_option=1)


def _items(folder: Path) -> list[ImageItem]:
    paths = []
    for sample in make_samples():
        (folder / sample.name).write_bytes(sample.data)
        paths.append(str(folder / sample.name))
    items, errors = read_items(paths)
    assert not errors
    return items


def test_ocr_reads_the_signs(tmp_path: Path) -> None:
    model = create_model("ocr")
    results = model.predict(_items(tmp_path))
    for sign, found in zip(SIGNS, results, strict=True):
        assert isinstance(found, Detections)
        assert [t.replace(" ", "") for t in found.texts] == [sign.replace(" ", "")]
        assert found.labels == ("text",)
        x1, y1, x2, y2 = found.xyxy[0]
        assert (
            330 <= x1 < x2 <= 630 and 20 <= y1 < y2 <= 90
        )  # on the sign, displayed grid (scene 3 is EXIF 6)


def test_raw_files_adapter(tmp_path: Path) -> None:
    items = _items(tmp_path)
    save_raw_file(tmp_path / "scene_1_dinox_preannot.json", make_samples()[0].detections)
    (tmp_path / "scene_2.json").write_text("{broken")
    results = create_model("raw-files").predict(items)
    assert isinstance(results[0], Detections) and results[0].labels == ("car", "person")
    assert isinstance(results[1], PredictionFileError)
    assert isinstance(results[2], PredictionFileError)
    assert "prelabel.json, scene_3_dinox_preannot.json or scene_3.json found" in str(results[2])


class _Counting(ModelAdapter):
    """A stand-in model that counts calls; the cache logic is what is tested here."""

    name = "counting"
    task_types = ("detection",)

    def __init__(self) -> None:
        self.calls = 0

    def signature(self) -> ModelSignature:
        return SIGNATURE

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        self.calls += len(batch)
        return [
            DETECTIONS if i % 2 == 0 else ImageError(item.uri, "model refused")
            for i, item in enumerate(batch)
        ]


def test_infer_items_uses_the_cache(tmp_path: Path) -> None:
    items = _items(tmp_path)
    model, cache = _Counting(), LocalCache(tmp_path / "cache")
    first = infer_items(items, model, cache)  # type: ignore[arg-type]
    assert (first.inferred, first.cached, len(first.errors), model.calls) == (2, 0, 2, 4)
    second = infer_items(items, model, cache)  # type: ignore[arg-type]
    assert (second.inferred, second.cached, model.calls) == (1, 2, 6)  # only the misses go to the model
    third = infer_items(items, model, cache, refresh=True)  # type: ignore[arg-type]
    assert (third.inferred, third.cached, model.calls) == (2, 0, 10)
    assert all(r.image.sha256 == read_image_info(Path(r.uri)).sha256 for r in third.records)


def test_read_batch_decodes_only_the_misses_a_model_needs_pixels_of(tmp_path: Path) -> None:
    paths = [item.uri for item in _items(tmp_path)]
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    model, cache = _Counting(), LocalCache(tmp_path / "cache")
    cache.put(read_image_info(Path(paths[0])).sha256, SIGNATURE, DETECTIONS)
    batch = read_batch([*paths, str(tmp_path / "bad.jpg")], model, cache)
    assert [Path(e.file).name for e in batch.found.errors] == ["bad.jpg"] and batch.found.cached == 1
    assert [i.uri for i in batch.misses] == paths[1:]
    assert [i._loaded is not None for i in batch.items] == [False] + [True] * len(
        batch.misses
    )  # hit: not decoded
    result = infer_read(batch, model, cache)
    assert (result.cached, result.inferred, len(result.errors)) == (1, 2, 2)  # the stand-in fails every other
    assert result.errors[0].file.endswith("bad.jpg")  # read errors first, as before
    assert all(i._loaded is None for i in batch.items) and batch.found.errors == result.errors[:1]
    raw = read_batch(paths, create_model("raw-files"), None)
    assert all(i._loaded is None for i in raw.items)  # raw files need no pixels


class _Agreeing(_Counting):
    """The stand-in that never refuses."""

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        self.calls += len(batch)
        return [DETECTIONS for _ in batch]


def test_the_same_bytes_go_to_the_model_once_in_a_batch_and_in_the_next(tmp_path: Path) -> None:
    paths = [item.uri for item in _items(tmp_path)]
    copy = tmp_path / "copy_of_the_first.jpg"
    copy.write_bytes(Path(paths[0]).read_bytes())
    model, cache = _Agreeing(), LocalCache(tmp_path / "cache")
    first = read_batch([paths[0], str(copy), paths[1]], model, cache)
    second = read_batch([str(copy), paths[1], paths[2]], model, cache)  # read while the first is inferred
    assert len(second.misses) == 3  # nothing was cached yet
    one = infer_read(first, model, cache)
    assert (one.inferred, one.cached, model.calls) == (2, 1, 2)
    assert sorted(r.uri for r in one.records) == sorted([paths[0], str(copy), paths[1]])
    two = infer_read(reuse_earlier(second, one, cache), model, cache)
    assert (two.inferred, two.cached, model.calls) == (1, 2, 3)
    assert sorted(r.uri for r in two.records) == sorted([str(copy), paths[1], paths[2]])
    assert all(i._loaded is None for i in second.items)  # the reused misses' pixels dropped too
    # Without a cache (raw files: predictions follow the path, not the bytes) each goes to the model.
    uncached = [paths[0], str(copy)]
    alone = infer_read(reuse_earlier(read_batch(uncached, model, None), one, None), model, None)
    assert (alone.inferred, alone.cached, model.calls) == (2, 0, 5)


class _Overflowing(_Counting):
    """A stand-in whose output holds NaN and inf, as float16 overflow gives."""

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        self.calls += len(batch)
        nan, inf = float("nan"), float("inf")
        return [
            Detections(
                xyxy=[[1, 2, 30, 40], [5, 5, inf, 9], [1, 1, 8, 8]],
                scores=[0.9, 0.8, nan],
                labels=("a", "b", "c"),
                keypoints=((Keypoint("nose", 3, 4, 0.5), Keypoint("eye", nan, 4, 0.5)), None, None),
                region_choices=((Choice("red", nan), Choice("blue", 0.4)), (), ()),
                choices=(Choice("day", 0.7), Choice("night", inf)),
            )
            for _ in batch
        ]


def test_numbers_that_are_not_finite_refuse_the_image_before_the_cache(tmp_path: Path) -> None:
    """A NaN is the image's error row naming each one; nothing of it is cached, so a rerun
    asks the model again (cached with its NaN, an entry was refused on every read)."""
    items = _items(tmp_path)[:1]
    model, cache = _Overflowing(), LocalCache(tmp_path / "cache")
    result = infer_items(items, model, cache)  # type: ignore[arg-type]
    assert result.records == [] and [e.stage for e in result.errors] == ["infer"]
    assert result.errors[0].error == (
        f"{Path(items[0].uri).name}: detections refused: #0 'a': keypoint 'eye' is not finite; "
        "#0 'a': choice 'red' score nan is not finite; #1 'b': box [5, 5, inf, 9] is not finite; "
        "#2 'c': score nan is not finite; choice 'night' score inf is not finite"
    )
    again = infer_items(items, model, cache)  # type: ignore[arg-type]
    assert (again.cached, again.inferred, model.calls) == (0, 0, 2)


def test_read_items_reports_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    items, errors = read_items([str(tmp_path / "empty.jpg"), str(tmp_path / "missing.jpg")])
    assert not items
    assert [(Path(e.file).name, e.stage) for e in errors] == [
        ("empty.jpg", "read image"),
        ("missing.jpg", "read image"),
    ]


def test_shards_are_stable_and_markers_persist(tmp_path: Path) -> None:
    from prelabel.predict.shards import shard_key, split_shards

    shards = split_shards(["c", "a", "e", "b", "d"], 2)
    assert shards == [["a", "b"], ["c", "d"], ["e"]]
    assert shard_key(shards[0], SIGNATURE) == shard_key(["a", "b"], SIGNATURE)
    assert shard_key(shards[0], SIGNATURE) != shard_key(shards[1], SIGNATURE)
    assert shard_key(shards[0], SIGNATURE) != shard_key(shards[0], ModelSignature("other"))
    with pytest.raises(ValueError, match="shard size"):
        split_shards(["a"], 0)
    cache = LocalCache(tmp_path)
    assert cache.get_marker("shard-1") is None
    cache.put_marker("shard-1", {"worker": "gpu-a", "images": 2})
    assert cache.get_marker("shard-1") == {"worker": "gpu-a", "images": 2}
