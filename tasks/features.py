"""The features task: a batch of review items -> embeddings (through the cache)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from prelabel.core.settings import load_settings
from prelabel.ingest.fetch import Fetcher
from prelabel.review.features import Embedder, EmbedResult, embed_items
from prelabel.review.sets import ReviewItem
from prelabel.store.cache import PredictionCache
from tasks.common import RETRY

__all__ = ["embed_batch", "embedder_for"]


@cache
def _embedder(options: str) -> Embedder:
    return Embedder(**json.loads(options))


def embedder_for(options: Mapping[str, Any]) -> Embedder:
    """One embedder per options per worker process: weights load once, lazily."""
    return _embedder(json.dumps(dict(options), sort_keys=True))


@task(name="embed-batch", cache_policy=NO_CACHE, **RETRY)
def embed_batch(
    items: Sequence[ReviewItem],
    embedder: Mapping[str, Any],
    feature_cache: PredictionCache | None,
    refresh: bool,
    max_pixels: int,
    ls_url: str | None,
) -> EmbedResult:
    """Embeddings of a batch of items; unreadable images become error rows."""
    settings = load_settings()
    if ls_url is not None and settings.ls_api_key is not None:
        settings.ls_key_for(ls_url)  # the configured key goes to the configured server only
    return embed_items(
        items,
        embedder_for(embedder),
        Fetcher(settings),
        feature_cache,
        ls_url=settings.ls_url,
        refresh=refresh,
        max_pixels=max_pixels,
    )
