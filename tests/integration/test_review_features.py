"""Review features: the tests of `test_review.py` that need real servers."""

from __future__ import annotations

from pathlib import Path

from prelabel.review.features import read_features
from prelabel.review.sets import ReviewSet, items_from_references
from tests.unit.review.test_review import _photo


def test_features_flow_writes_parquet_and_reuses_the_cache(
    prefect_server: None, tiny_dinov2: Path, tmp_path: Path
) -> None:
    from flows.features import FeaturesParams, features

    refs = tmp_path / "refs.txt"
    paths = [_photo(tmp_path, f"{i}.png", i) for i in range(5)]
    refs.write_text("".join(f"{p.name},2,2,30,30\n" for p in paths) + "missing.png\n")
    ReviewSet.create(
        tmp_path / "set.sqlite", items_from_references(refs, "car"), {"source": "references"}
    ).close()
    params = FeaturesParams(
        review_set=str(tmp_path / "set.sqlite"),
        checkpoint=str(tiny_dinov2),
        batch_size=2,
        cache_dir=str(tmp_path / "cache"),
        device="cpu",
    )
    done = features(params)
    assert (done.items, done.computed, done.cached, done.failed, done.dim) == (6, 5, 0, 1, 16)
    assert done.out == str(tmp_path / "set.dinov2.parquet")
    assert sorted(read_features(done.out)) == [1, 2, 3, 4, 5]
    assert "missing.png" in Path(done.errors_file).read_text()
    rerun = features(params)
    assert (rerun.computed, rerun.cached) == (0, 5)
