"""The verifier's per-box P(yes), cached so that a rerun embeds no box it has already seen.

One entry per image, a marker in the prediction cache's store (a folder or an S3 prefix):
``verdicts/<key>/<sha256[:2]>/<sha256>``, where ``key`` digests the model signature (the
boxes are the model's), the verifier's content (a retrained verifier never reuses old
verdicts) and the embedder (checkpoint, revision, dtype). The entry keeps each box and the
verifier label it was scored under: other boxes (a model whose output varies from run to
run) or another label (a changed label map) make a miss. ``min_verified`` is applied after
the cache, so changing it reuses the verdicts. An entry that is not a valid one is a miss,
rewritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.records import ModelSignature
from prelabel.review.features import Embedder
from prelabel.store.cache import PredictionCache

__all__ = ["read_verdicts", "verdict_name", "write_verdicts"]

BOX_TOLERANCE = 0.01
"""Pixels a stored box may differ by from the record's (JSON round trips, float32 boxes)."""


def verdict_name(sha256: str, model: ModelSignature, verifier_digest: str, embedder: Embedder) -> str:
    """The marker name of an image's verdicts."""
    params = {"model": model.key, "embedder": embedder.signature().key, "dtype": embedder.dtype}
    key = ModelSignature("verdicts", verifier_digest, params).key
    return f"verdicts/{key}/{sha256[:2]}/{sha256}"


def read_verdicts(
    cache: PredictionCache,
    name: str,
    boxes: npt.NDArray[np.floating],
    labels: Sequence[str],
    scored: Sequence[bool],
) -> list[float | None] | None:
    """Each box's P(yes) (None where ``scored`` is False: no model), or None on a miss.

    ``boxes`` (n, 4) xyxy pixels and ``labels`` (the verifier's) must be those stored.
    """
    entry = cache.get_marker(name)
    if entry is None:
        return None
    try:
        stored = np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4)
        p_yes = [None if p is None else float(p) for p in entry["p_yes"]]
        same = list(entry["labels"]) == list(labels) and len(p_yes) == len(scored) == len(stored)
    except (KeyError, TypeError, ValueError):
        return None
    if not same or not np.allclose(stored, boxes, rtol=0, atol=BOX_TOLERANCE):
        return None
    if any(
        (p is not None) != s or (p is not None and not 0 <= p <= 1)
        for p, s in zip(p_yes, scored, strict=True)
    ):
        return None  # (a NaN fails the range check too)
    return p_yes


def write_verdicts(
    cache: PredictionCache,
    name: str,
    boxes: npt.NDArray[np.floating],
    labels: Sequence[str],
    p_yes: Sequence[float | None],
) -> None:
    """Store an image's verdicts (see ``read_verdicts``)."""
    entry: dict[str, Any] = {
        "boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4).tolist(),
        "labels": list(labels),
        "p_yes": list(p_yes),
    }
    cache.put_marker(name, entry)
