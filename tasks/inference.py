"""The inference task: read, hash, look up the cache, run the model on the misses."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.cache import PredictionCache
from prelabel.fetch import Fetcher
from prelabel.models import ModelAdapter, create_model
from prelabel.pipeline import InferResult, infer_items, read_items
from prelabel.settings import load_settings
from tasks.common import RETRY

__all__ = ["infer_batch", "model_for"]


@cache
def _model(name: str, options: str) -> ModelAdapter:
    return create_model(name, **json.loads(options))


def model_for(name: str, options: Mapping[str, Any]) -> ModelAdapter:
    """One adapter per (name, options) per worker process: weights load once, lazily."""
    return _model(name, json.dumps(dict(options), sort_keys=True))


@task(name="infer-batch", cache_policy=NO_CACHE, **RETRY)
def infer_batch(
    uris: Sequence[str],
    model: str,
    model_options: Mapping[str, Any],
    prediction_cache: PredictionCache | None,
    refresh: bool,
    max_pixels: int,
) -> InferResult:
    """Predictions for a batch of images (paths, s3:// keys, URLs); unreadable ones become error rows."""
    items, errors = read_items(uris, max_pixels, Fetcher(load_settings()))
    result = infer_items(items, model_for(model, model_options), prediction_cache, refresh=refresh)
    result.errors[:0] = errors
    return result
