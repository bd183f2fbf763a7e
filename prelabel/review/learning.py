"""Active learning: which item to ask next, per label, from the answers so far.

One logistic regression per label on the item embeddings, refit from the stored answers
every time a question is chosen (stateless: the review page can call it after each answer;
a fit on a thousand answers takes milliseconds). Until the training answers hold both a yes
and a no, P(yes) is the detector's score (0.5 where none): the cold start. Without features
(``features=None``) it stays so: the strategies order the items by the detector's score.

Strategies, over the items not answered yet:

- ``entropy``: highest predictive entropy first (P(yes) nearest 0.5): classic uncertainty
  sampling, the item the model is least sure of;
- ``max-prob``: highest P(yes) first, to show every likely positive when positives are rare;
  with ``target="no"``, highest P(no) first (the class swap);
- ``random``: uniformly at random.

Accuracy is measured on held-out answers only: each question is, with probability
``HOLDOUT_SHARE``, an item drawn uniformly at random instead of the strategy's pick; its
answer is marked ``held_out`` and never trains the model. So the estimate is unbiased by
the strategy (which favours hard items) and comes with its count. The draw is made once per
question, over the items free to ask (``exclude`` takes out those leased to other reviewers),
so busy items never tilt the share away from ``HOLDOUT_SHARE``.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from prelabel.core.errors import PrelabelError
from prelabel.review.sets import Answer, ReviewItem, ReviewSet

__all__ = [
    "HOLDOUT_SHARE",
    "STRATEGIES",
    "Accuracy",
    "Strategy",
    "Suggestion",
    "Target",
    "held_out_accuracy",
    "next_items",
    "order",
    "probabilities",
]

Strategy = Literal["entropy", "max-prob", "random"]
Target = Literal["yes", "no"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
HOLDOUT_SHARE = 0.1
_EPS = 1e-12

Floats = npt.NDArray[np.float64]
Features = Mapping[int, npt.NDArray[np.floating]]


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The next item to ask, its P(yes), and whether its answer is held out (drawn at random)."""

    item: ReviewItem
    p_yes: float
    held_out: bool
    strategy: str
    cold_start: bool


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Accuracy on the held-out answers, and how many there are (``None`` with none)."""

    accuracy: float | None
    count: int


def probabilities(
    features: npt.NDArray[np.floating] | None, train: Sequence[int], answers: Sequence[bool], scores: Floats
) -> tuple[Floats, bool]:
    """P(yes) for every row of ``scores``, and whether a model was fitted.

    ``train`` are row indices with their ``answers``; ``scores`` the detector's scores (NaN
    where unknown), used until the answers hold both classes (always, without ``features``).
    """
    labels = np.asarray(answers, dtype=bool)
    if features is None or labels.size == 0 or labels.all() or not labels.any():
        return np.where(np.isnan(scores), 0.5, np.clip(scores, 0.0, 1.0)), False
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit(features[np.asarray(train)], labels)
    yes = list(model.classes_).index(True)
    return np.asarray(model.predict_proba(features)[:, yes], dtype=np.float64), True


def order(p_yes: Floats, strategy: Strategy, target: Target = "yes", seed: int = 0) -> npt.NDArray[np.intp]:
    """Row indices, the one to ask first first (ties keep row order)."""
    if strategy == "random":
        return np.random.default_rng(seed).permutation(len(p_yes))
    if strategy == "entropy":
        p = np.clip(p_yes, _EPS, 1 - _EPS)
        key = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    elif strategy == "max-prob":
        key = p_yes if target == "yes" else 1.0 - p_yes
    else:
        raise PrelabelError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    return np.argsort(-key, kind="stable")


def next_items(
    review_set: ReviewSet,
    features: Features | None,
    label: str,
    strategy: Strategy = "entropy",
    target: Target = "yes",
    count: int = 1,
    seed: int = 0,
    exclude: Collection[int] = (),
    draw_key: str = "",
) -> list[Suggestion]:
    """The next ``count`` items of ``label`` to ask (never those in ``exclude``), after a refit on
    its training answers.

    Each position is, with probability ``HOLDOUT_SHARE``, a random unanswered item whose
    answer is to be held out. The draw is seeded by ``seed``, the number of answers so far and
    ``draw_key`` (the review page gives each reviewer their own draws), so asking again before
    answering gives the same items.
    """
    items, rows, answers = _label_state(review_set, features, label)
    pool = [i for i, item in enumerate(items) if item.id not in answers and item.id not in exclude]
    if not pool:
        return []
    train = [i for i, item in enumerate(items) if item.id in answers and not answers[item.id].held_out]
    p_yes, fitted = probabilities(rows, train, [answers[items[i].id].yes for i in train], _scores(items))
    ranked = [int(i) for i in order(p_yes[pool], strategy, target, seed + len(answers))]
    key = f"{seed}:{label}:{len(answers)}" + (f":{draw_key}" if draw_key else "")
    draw = random.Random(key)  # noqa: S311  (sampling, not security)
    chosen: list[Suggestion] = []
    remaining = set(range(len(pool)))
    for _ in range(min(count, len(pool))):
        held_out = draw.random() < HOLDOUT_SHARE
        pick = draw.choice(sorted(remaining)) if held_out else next(r for r in ranked if r in remaining)
        remaining.discard(pick)
        index = pool[pick]
        chosen.append(Suggestion(items[index], float(p_yes[index]), held_out, strategy, not fitted))
    return chosen


def held_out_accuracy(review_set: ReviewSet, features: Features | None, label: str) -> Accuracy:
    """The current model's accuracy (P(yes) >= 0.5 means yes) on the held-out answers of ``label``
    (without features, the detector's score's)."""
    items, rows, answers = _label_state(review_set, features, label)
    train = [i for i, item in enumerate(items) if item.id in answers and not answers[item.id].held_out]
    test = [i for i, item in enumerate(items) if item.id in answers and answers[item.id].held_out]
    if not test:
        return Accuracy(None, 0)
    p_yes, _ = probabilities(rows, train, [answers[items[i].id].yes for i in train], _scores(items))
    right = sum((p_yes[i] >= 0.5) == answers[items[i].id].yes for i in test)
    return Accuracy(right / len(test), len(test))


def _label_state(
    review_set: ReviewSet, features: Features | None, label: str
) -> tuple[list[ReviewItem], npt.NDArray[np.floating] | None, dict[int, Answer]]:
    """The label's items (those with features, when given), their feature rows, and all answers."""
    if features is None:
        return review_set.items(label), None, review_set.answers()
    items = [item for item in review_set.items(label) if item.id in features]
    if not items:
        raise PrelabelError(f"label {label!r}: no item of {review_set.path} has features")
    rows = np.stack([features[item.id] for item in items])
    return items, rows, review_set.answers()


def _scores(items: Sequence[ReviewItem]) -> Floats:
    return np.array([np.nan if i.score is None else i.score for i in items], dtype=np.float64)
