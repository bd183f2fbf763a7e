"""The inference task: read, hash, look up the cache, run the model on the misses."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.core.settings import load_settings
from prelabel.ingest.rawpaths import raw_file_path
from prelabel.predict.batches import InferResult, ReadBatch, adapter_options, infer_read
from prelabel.predict.models import ModelAdapter, create_model
from prelabel.predict.models.dinox import ENDPOINTS as DINOX_FAMILY
from prelabel.predict.models.registry import model_parts
from prelabel.records import save_raw_file
from prelabel.review.features import Embedder
from prelabel.review.verifier import Verifier, VerifyStep, verify_records
from prelabel.store.cache import PredictionCache
from tasks.common import RETRY

__all__ = ["api_guard", "infer_batch", "model_for", "save_raw_files"]


@cache
def _model(name: str, options: str) -> ModelAdapter:
    return create_model(name, **json.loads(options))


def model_for(name: str, options: Mapping[str, Any]) -> ModelAdapter:
    """One adapter per (name, options) per worker process: weights load once, lazily.

    An adapter that batches on its own (``batch_size``; in a chain, each such part) gets
    ``PRELABEL_INFER_BATCH_SIZE`` unless the options say otherwise.
    """
    given = adapter_options(name, options, load_settings().infer_batch_size)
    return _model(name, json.dumps(given, sort_keys=True))


DINOX_LIMIT = "prelabel-dinox"
"""The global concurrency limit that guards the DINO-X API across all runs (when it exists)."""


@cache
def _limit_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return True


def api_guard(model: str) -> contextlib.AbstractContextManager[object]:
    """Cloud models (and chains with one) hold a slot of ``prelabel-dinox`` while they run, if
    that limit is set up."""
    cloud = {cls.name for _, cls in model_parts(model)} & set(DINOX_FAMILY)
    if not cloud or not _limit_exists(DINOX_LIMIT):
        return contextlib.nullcontext()
    from prefect.concurrency.sync import concurrency

    return concurrency(DINOX_LIMIT, occupy=1, strict=True)


@task(name="infer-batch", cache_policy=NO_CACHE, **RETRY)
def infer_batch(
    batch: ReadBatch,
    model: str,
    model_options: Mapping[str, Any],
    prediction_cache: PredictionCache | None,
    max_pixels: int,
    verify: VerifyStep | None = None,
) -> InferResult:
    """Predictions for a batch read (and decoded) ahead by ``prelabel.predict.batches.read_batch``:
    its cached records, then the model's for the misses; its read error rows first.

    With ``verify``, the verifier drops the boxes it rejects after the cache (which keeps the
    model's output whole), embedding the batch's boxes from the bytes already read; their
    P(yes) is kept in the same cache, so a rerun embeds only boxes it has not scored.
    """
    with api_guard(model):
        result = infer_read(batch, model_for(model, model_options), prediction_cache)
    if verify is not None and result.records:
        verifier, embedder = _verifier(verify.path, verify.device, Path(verify.path).stat().st_mtime_ns)
        data = {item.uri: item.data for item in batch.items}
        checked = verify_records(
            result.records,
            data,
            verifier,
            embedder,
            verify.min_verified,
            verify.label_map,
            max_pixels,
            prediction_cache,
        )
        result.records, result.verified = checked.records, checked.counts
        result.errors += checked.errors
    return result


@cache
def _verifier(path: str, device: str | None, mtime_ns: int) -> tuple[Verifier, Embedder]:
    """One verifier and its embedder per file version per worker process (weights load once)."""
    verifier = Verifier.load(path)
    options = verifier.embedder_options()
    embedder = Embedder(
        options.pop("name"), device=device, batch_size=load_settings().infer_batch_size, **options
    )
    return verifier, embedder


@task(name="save-raw-files", cache_policy=NO_CACHE)
def save_raw_files(out: Path, result: InferResult, input_root: Path | None) -> int:
    """One DINO-X-shaped file per image, the input's folders mirrored under ``out``:
    ``<image path relative to input_root>.prelabel.json`` (names cannot collide)."""
    for record in result.records:
        save_raw_file(raw_file_path(record.uri, out, input_root), record.detections)
    return len(result.records)
