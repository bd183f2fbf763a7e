"""A verifier: the per-label yes/no classifier trained on a review set's answers, kept as numbers.

Saved as JSON (no pickle: loading a verifier runs no code): per label the logistic
regression's weights and bias, with its metrics (answers trained on, positives, held-out
accuracy and count), and the embedder that made the features (family, checkpoint, revision,
margin), so a run embeds each predicted box exactly as the review set's items were.
P(yes) = sigmoid(embedding . weights + bias). A label whose training answers hold a single
class (or no answers) has no model and keeps every box: the verifier only drops what it
learnt to reject.

At run time (``verify_records``) every box of a batch is cropped with the margin, embedded
in one batched pass, and dropped when P(yes) < ``min_verified``. With a cache, each box's
P(yes) is kept there (``prelabel.review.verdicts``) and a rerun embeds only what it has not seen.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.core.atomic import atomic_write
from prelabel.core.errors import PrelabelError
from prelabel.core.failures import ErrorRow, Stage, item_failure
from prelabel.core.images import DEFAULT_MAX_PIXELS, load_image
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.records import PredictionRecord
from prelabel.review.features import Embedder, Vector, crop_box
from prelabel.review.learning import Accuracy, held_out_accuracy
from prelabel.review.sets import ReviewSet
from prelabel.review.verdicts import read_verdicts, verdict_name, write_verdicts
from prelabel.store.cache import PredictionCache

__all__ = [
    "FORMAT",
    "LabelModel",
    "Verifier",
    "VerifyResult",
    "VerifyStep",
    "features_embedder",
    "train_verifier",
    "verify_records",
]

FORMAT = "prelabel-verifier/1"


@dataclass(frozen=True)
class LabelModel:
    """One label's classifier (``weights`` None: not trained, keeps all) and its metrics."""

    weights: list[float] | None
    bias: float
    trained_on: int
    positives: int
    held_out_accuracy: float | None
    held_out: int

    def p_yes(self, vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64] | None:
        if self.weights is None:
            return None
        logits = vectors.astype(np.float64) @ np.asarray(self.weights, dtype=np.float64) + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)


@dataclass(frozen=True)
class Verifier:
    """A trained verifier: its name, the embedder of its features, and one model per label."""

    name: str
    embedder: str
    checkpoint: str
    revision: str | None
    margin: float
    labels: dict[str, LabelModel]
    review_set: str = ""

    def embedder_options(self) -> dict[str, Any]:
        return {
            "name": self.embedder,
            "checkpoint": self.checkpoint,
            "revision": self.revision,
            "margin": self.margin,
        }

    def save(self, path: str | Path) -> Path:
        """JSON, written whole (atomically)."""
        atomic_write(path, json.dumps({"format": FORMAT, **asdict(self)}, indent=1))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Verifier:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.pop("format", None) != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            labels = {str(k): LabelModel(**v) for k, v in data.pop("labels").items()}
            return cls(labels=labels, **data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PrelabelError(f"cannot read verifier {path} ({exc})") from exc

    def digest(self) -> str:
        """A hex digest of everything the verifier is (weights, embedder): retrained, it differs."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def version_suffix(self, min_verified: float) -> str:
        """What the verifier adds to a run's model version: its name and threshold."""
        return f"verified-{self.name}-{min_verified:g}"


def features_embedder(path: str | Path) -> dict[str, Any]:
    """The embedder that wrote a features file (from its Parquet metadata)."""
    import pyarrow.parquet as pq

    try:
        meta = {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
        model, where, margin = meta["prelabel.model"], meta["prelabel.revision"], meta["prelabel.margin"]
    except (OSError, ValueError, KeyError) as exc:
        raise PrelabelError(f"{path} is not a features file from `prelabel review features` ({exc})") from exc
    checkpoint, _, revision = where.rpartition("@")
    return {
        "name": model.removeprefix("features-"),
        "checkpoint": checkpoint,
        "revision": None if revision == "main" else revision,
        "margin": float(margin),
    }


def train_verifier(
    review_set: ReviewSet, features: Mapping[int, Vector], embedder: Mapping[str, Any], name: str
) -> Verifier:
    """Fit each label's logistic regression on its training answers (held-out ones only measure)."""
    if not re.fullmatch(r"[A-Za-z0-9_.]+", name):
        raise PrelabelError(
            f"verifier name {name!r}: use letters, digits, _ and . (it joins the model version)"
        )
    answers = review_set.answers()
    models: dict[str, LabelModel] = {}
    for label in review_set.labels():
        items = [i for i in review_set.items(label) if i.id in features and i.id in answers]
        train = [i for i in items if not answers[i.id].held_out]
        yes = [answers[i.id].yes for i in train]
        weights, bias = None, 0.0
        if any(yes) and not all(yes):
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(C=1.0, max_iter=1000)
            model.fit(np.stack([features[i.id] for i in train]), np.asarray(yes, dtype=bool))
            sign = 1.0 if list(model.classes_).index(True) == 1 else -1.0
            weights = [sign * float(w) for w in model.coef_[0]]
            bias = sign * float(model.intercept_[0])
        measured = held_out_accuracy(review_set, dict(features), label) if items else Accuracy(None, 0)
        models[label] = LabelModel(weights, bias, len(train), sum(yes), measured.accuracy, measured.count)
    return Verifier(
        name,
        str(embedder["name"]),
        str(embedder["checkpoint"]),
        embedder.get("revision"),
        float(embedder["margin"]),
        models,
        str(review_set.path),
    )


@dataclass
class VerifyResult:
    """The verified records, boxes kept, dropped and scored from the cache per label, and failures."""

    records: list[PredictionRecord] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[ErrorRow] = field(default_factory=list)


@dataclass
class _Planned:
    """A record's verifier labels, which boxes have a model, and its cached verdicts (if any)."""

    record: PredictionRecord
    labels: list[str]
    scored: list[bool]
    p_yes: list[float | None] | None
    cache_name: str | None


def verify_records(
    records: Sequence[PredictionRecord],
    images: Mapping[str, bytes],
    verifier: Verifier,
    embedder: Embedder,
    min_verified: float,
    label_map: LabelMap | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cache: PredictionCache | None = None,
) -> VerifyResult:
    """Drop each box whose P(yes) < ``min_verified``, all boxes of a batch embedded together.

    A model label is looked up through ``label_map`` (the verifier knows project labels).
    Counts are ``"<label> kept"`` / ``"<label> dropped"`` (labels without a model: kept), and
    ``"<label> cached"`` for boxes whose P(yes) came from ``cache`` (records with a model
    signature only: it pins the boxes). An image that cannot be read again is an error row
    and posts nothing.
    """
    if not 0 <= min_verified <= 1 or math.isnan(min_verified):
        raise PrelabelError(f"min_verified {min_verified} is outside 0..1")
    result = VerifyResult()
    known = list(verifier.labels)
    digest = verifier.digest() if cache is not None else ""
    crops: list[Any] = []
    plan: list[_Planned] = []
    for record in records:
        boxes = record.detections.xyxy
        labels = [
            (label_map.resolve(label, known) if label_map else None) or label
            for label in record.detections.labels
        ]
        models = [verifier.labels.get(label) for label in labels]
        scored = [model is not None and model.weights is not None for model in models]
        name = p_yes = None
        if cache is not None and record.model is not None:
            name = verdict_name(record.image.sha256, record.model, digest, embedder)
            p_yes = read_verdicts(cache, name, boxes, labels, scored)
        with item_failure(result.errors, record.uri, Stage.READ) as attempt:
            if p_yes is None and any(scored):
                rgb = load_image(images[record.uri], record.uri, max_pixels).rgb
                mine: list[Any] = []
                for box, wanted in zip(boxes, scored, strict=True):
                    if wanted:
                        x1, y1, x2, y2 = (float(v) for v in box)
                        mine.append(crop_box(rgb, (x1, y1, x2, y2), verifier.margin, record.uri))
                crops += mine  # only whole records: the vectors below follow the plan
        if not attempt.failed:
            plan.append(_Planned(record, labels, scored, p_yes, name))
    vectors = iter(embedder.embed(crops) if crops else [])
    for planned in plan:
        p_yes, record = planned.p_yes, planned.record
        if p_yes is None:
            p_yes = [
                _p_yes(verifier.labels[label], next(vectors)) if wanted else None
                for label, wanted in zip(planned.labels, planned.scored, strict=True)
            ]
            if planned.cache_name is not None and cache is not None and any(planned.scored):
                write_verdicts(cache, planned.cache_name, record.detections.xyxy, planned.labels, p_yes)
        else:
            result.counts.update(
                f"{label} cached" for label, p in zip(planned.labels, p_yes, strict=True) if p is not None
            )
        keep = np.array([p is None or p >= min_verified for p in p_yes], dtype=bool)
        result.counts.update(
            f"{label} {'kept' if kept else 'dropped'}"
            for label, kept in zip(planned.labels, keep, strict=True)
        )
        result.records.append(replace(record, detections=record.detections[keep]))
    return result


def _p_yes(model: LabelModel, vector: Vector) -> float | None:
    p = model.p_yes(vector[None, :])
    return None if p is None else float(p[0])


@dataclass(frozen=True)
class VerifyStep:
    """What a run's batches need to verify their boxes: the verifier file, threshold, label map."""

    path: str
    min_verified: float = 0.5
    label_map: LabelMap | None = None
    device: str | None = None
