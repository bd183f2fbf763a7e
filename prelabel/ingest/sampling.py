"""Seeded stratified sampling over a stream, with exact per-stratum counts.

One pass over the items keeps a uniform reservoir of at most ``n`` items per stratum (memory
is ``n`` x strata, not the 15 million records of the source) and counts every stratum.
Quotas then follow from the counts: proportional (largest remainder, so they sum to ``n``
exactly) or equal per stratum (a stratum with too few items gives its share to the others).
The same items in the same order with the same seed give the same sample.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Sample", "StratumCount", "quotas", "stratified_sample"]

T = TypeVar("T")


@dataclass(frozen=True)
class StratumCount:
    """How many items a stratum had, and how many the sample took."""

    stratum: str
    available: int
    sampled: int


@dataclass
class Sample(Generic[T]):
    """The sampled items in their original order, and the counts per stratum."""

    items: list[T]
    strata: list[StratumCount]


def quotas(counts: dict[str, int], n: int, equal: bool = False) -> dict[str, int]:
    """Per-stratum sample sizes that sum to ``min(n, total)`` exactly."""
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    names = sorted(counts)
    if not equal:
        exact = {s: n * counts[s] / total for s in names}
        share = {s: int(exact[s]) for s in names}
        by_remainder = sorted(names, key=lambda s: (-(exact[s] - share[s]), s))
        for s in by_remainder[: n - sum(share.values())]:
            share[s] += 1
        return share
    share = dict.fromkeys(names, 0)
    left = n
    while left:
        open_ = [s for s in names if share[s] < counts[s]]
        each = max(1, left // len(open_))
        for s in open_:
            give = min(each, counts[s] - share[s], left)
            share[s] += give
            left -= give
            if not left:
                break
    return share


def stratified_sample(
    items: Iterable[T],
    n: int,
    stratum: Callable[[T], str] | None = None,
    *,
    equal: bool = False,
    seed: int = 0,
) -> Sample[T]:
    """``n`` items drawn uniformly within strata (one stratum when ``stratum`` is None)."""
    if n < 0:
        raise ValueError(f"sample size must be >= 0, got {n}")
    rng = random.Random(seed)  # noqa: S311  (reproducible sampling, not secrets)
    reservoirs: dict[str, list[tuple[int, T]]] = {}
    counts: dict[str, int] = {}
    for index, item in enumerate(items):
        key = stratum(item) if stratum is not None else ""
        seen = counts.get(key, 0)
        counts[key] = seen + 1
        reservoir = reservoirs.setdefault(key, [])
        if seen < n:
            reservoir.append((index, item))
        else:
            slot = rng.randrange(seen + 1)
            if slot < n:
                reservoir[slot] = (index, item)
    share = quotas(counts, n, equal)
    chosen: list[tuple[int, T]] = []
    for key in sorted(reservoirs):
        chosen += rng.sample(reservoirs[key], share[key])
    chosen.sort(key=lambda pair: pair[0])
    strata = [StratumCount(key, counts[key], share[key]) for key in sorted(counts)]
    return Sample([item for _, item in chosen], strata)
