"""Active learning: answers needed to reach 90% held-out balanced accuracy, entropy vs random.

Synthetic embeddings where the truth is known: two overlapping Gaussian classes (unit
variance, means ``--separation`` apart along one axis of ``--dims``), answers flipped with
10% label noise, a 1:9 class balance and a balanced case. Each strategy asks through
prelabel's own code (``prelabel.review.learning``: refit, ``order``, the held-out tenth drawn
at random and never trained on); the cold start is a weak synthetic detector score.
Accuracy is measured against the truth on a separate random sample (what the held-out tenth
estimates); balanced (the mean of the two classes' recalls), because at 1:9 answering "no"
to everything is already 90% plain accuracy. Median over seeds of the first answer count
at which it reaches the goal. Also times one refit at realistic embedding sizes.

    python benchmarks/active_learning.py            # --seeds 5 --pool 3000 --budget 1500
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from prelabel.review.learning import HOLDOUT_SHARE, order, probabilities


def make_data(rng: np.random.Generator, n: int, dims: int, positive: float, separation: float):
    truth = rng.random(n) < positive
    x = rng.normal(size=(n, dims))
    x[:, 0] += np.where(truth, separation / 2, -separation / 2)
    return x, truth


def balanced_accuracy(p_yes: np.ndarray, truth: np.ndarray) -> float:
    said = p_yes >= 0.5
    return 0.5 * (said[truth].mean() + (~said[~truth]).mean())


def answers_to_goal(strategy: str, seed: int, args: argparse.Namespace, positive: float) -> int | None:
    rng = np.random.default_rng(seed)
    x, truth = make_data(rng, args.pool + args.test, args.dims, positive, args.separation)
    pool_x, pool_truth, test_x, test_truth = (
        x[: args.pool],
        truth[: args.pool],
        x[args.pool :],
        truth[args.pool :],
    )
    given = pool_truth ^ (rng.random(args.pool) < args.noise)  # what people answer: 10% wrong
    score = 1 / (1 + np.exp(-(0.7 * pool_x[:, 0] + rng.normal(scale=1.5, size=args.pool))))  # weak detector
    both = np.vstack([pool_x, test_x])
    scores = np.concatenate([score, np.full(args.test, np.nan)])
    draw = np.random.default_rng(seed + 1000)
    asked = np.zeros(args.pool, bool)
    train: list[int] = []
    for answered in range(1, args.budget + 1):
        p, _ = probabilities(both, train, [bool(given[i]) for i in train], scores)
        open_ = np.flatnonzero(~asked)
        if draw.random() < HOLDOUT_SHARE:  # a held-out draw: asked at random, never trains
            asked[draw.choice(open_)] = True
        else:
            pick = open_[order(p[open_], strategy, seed=seed + answered)[0]]
            asked[pick] = True
            train.append(int(pick))
        p, fitted = probabilities(both, train, [bool(given[i]) for i in train], scores)
        if fitted and balanced_accuracy(p[args.pool :], test_truth) >= args.goal:
            return answered
    return None


def refit_ms(n: int, dims: int, repeat: int = 5) -> float:
    rng = np.random.default_rng(0)
    x, truth = make_data(rng, n, dims, 0.3, 3.3)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        probabilities(x, list(range(n)), truth.tolist(), np.full(n, np.nan))
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pool", type=int, default=3000, help="unanswered items to choose from")
    parser.add_argument("--test", type=int, default=4000, help="random items the accuracy is measured on")
    parser.add_argument("--dims", type=int, default=32)
    parser.add_argument("--separation", type=float, default=3.3, help="distance of the class means")
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--goal", type=float, default=0.9)
    parser.add_argument("--budget", type=int, default=1500, help="give up after this many answers")
    args = parser.parse_args()
    print("| case | entropy (median) | random (median) | ratio | entropy per seed | random per seed |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for case, positive in (("1:9 positives, 10% noise", 0.1), ("balanced, 10% noise", 0.5)):
        runs = {
            s: [answers_to_goal(s, seed, args, positive) for seed in range(args.seeds)]
            for s in ("entropy", "random")
        }
        medians = {
            s: statistics.median(v if v is not None else args.budget + 1 for v in runs[s]) for s in runs
        }
        ratio = medians["random"] / medians["entropy"]
        shown = {s: ", ".join(str(v) if v is not None else f">{args.budget}" for v in runs[s]) for s in runs}
        print(
            f"| {case} | {medians['entropy']:g} | {medians['random']:g} | **{ratio:.1f}x** | "
            f"{shown['entropy']} | {shown['random']} |",
            flush=True,
        )
    for n, dims in ((1000, 384), (5000, 384), (1000, 768)):
        print(f"refit on {n:,} answers x {dims} dims: {refit_ms(n, dims):.1f} ms (best of 5)")


if __name__ == "__main__":
    main()
