"""Overlap flows: the tests of `test_stages.py` that need real servers."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from prelabel.ingest.samples import make_samples
from tests.conftest import write_image
from tests.support.stages import Handshakes, Intervals, assert_overlapped


@pytest.mark.usefixtures("prefect_server")
def test_the_infer_flow_overlaps_reading_inference_and_writing(
    intervals: Intervals, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real flow, model and tasks, each stage wrapped in its handshake (one image a batch)."""
    import flows.common
    import flows.infer
    import tasks.inference as inference
    from flows.params import InferParams
    from prelabel.predict import batches

    samples = make_samples()
    (tmp_path / "images").mkdir()
    for sample in samples:
        write_image(tmp_path / "images", sample.name, sample.data)
    count = len(samples)
    meet = Handshakes(count)
    calls = {"prepare": itertools.count(), "work": itertools.count(), "finish": itertools.count()}  # in order
    real_read, real_infer, real_save = batches.read_batch, inference.infer_batch, inference.save_raw_files

    def read_batch(*args: Any, **kwargs: Any) -> Any:
        meet.prepare(next(calls["prepare"]))
        return real_read(*args, **kwargs)

    def infer_batch(*args: Any) -> Any:
        meet.work(next(calls["work"]))
        return real_infer(*args)

    def save_raw_files(*args: Any) -> int:
        meet.finish(next(calls["finish"]))
        return real_save(*args)

    monkeypatch.setattr(flows.common, "read_batch", read_batch)
    monkeypatch.setattr(flows.common, "infer_batch", infer_batch)
    monkeypatch.setattr(flows.infer, "save_raw_files", save_raw_files)
    params = InferParams(
        input_dir=str(tmp_path / "images"),
        out=str(tmp_path / "raw"),
        model="ocr",
        cache_dir=str(tmp_path / "cache"),
        batch_size=1,
    )
    summary = flows.infer.infer(params)
    assert (summary.written, summary.failed) == (count, 0) and meet.missed == []
    assert_overlapped(intervals.seen, count)


@pytest.mark.usefixtures("prefect_server")
def test_an_image_repeated_in_the_next_batch_goes_to_the_model_once(tmp_path: Path) -> None:
    """The next batch is read (and looked up) before this one is cached: the flow hands it this
    batch's predictions instead."""
    import flows.infer
    from flows.params import InferParams

    sample = make_samples()[0]
    (tmp_path / "images").mkdir()
    for copy in ("a", "b", "c"):
        write_image(tmp_path / "images", f"{copy}_{sample.name}", sample.data)
    params = InferParams(
        input_dir=str(tmp_path / "images"),
        out=str(tmp_path / "raw"),
        model="ocr",
        cache_dir=str(tmp_path / "cache"),
        batch_size=1,
    )
    summary = flows.infer.infer(params)
    assert (summary.written, summary.inferred, summary.cached, summary.failed) == (3, 1, 2, 0)
