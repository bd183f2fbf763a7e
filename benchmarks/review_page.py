"""The review page's server-side cost per answer: record it, choose and lease the next item
(a refit), and the progress table (another refit), through ``prelabel.review.queue``.

A set of ``--items`` boxes with random ``--dims``-dimensional features, answered by one
reviewer ``--answers`` times; the median and worst of the steps after the first ten.

    python benchmarks/review_page.py            # --items 1000 --dims 384 --answers 60
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from prelabel.review.queue import ReviewQueue
from prelabel.review.sets import ReviewItem, ReviewSet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--answers", type=int, default=60)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "set.sqlite"
        items = [
            ReviewItem(f"{i}.jpg", "car", (0, 0, 10, 10), float(rng.random())) for i in range(args.items)
        ]
        ReviewSet.create(path, items, {}).close()
        features = {i + 1: rng.normal(size=args.dims).astype(np.float32) for i in range(args.items)}
        queue = ReviewQueue(path, features, "entropy")
        times = []
        for _ in range(args.answers):
            started = time.perf_counter()
            shown = queue.current("r")
            assert shown is not None
            queue.answer("r", shown.item.id, bool(features[shown.item.id][0] > 0))
            queue.stats()
            times.append(time.perf_counter() - started)
    steady = times[10:] or times
    print(
        f"answer + next + progress, {args.items} items x {args.dims} dims: "
        f"median {1000 * np.median(steady):.0f} ms, worst {1000 * max(steady):.0f} ms"
    )


if __name__ == "__main__":
    main()
