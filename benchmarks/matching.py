"""Matching files to tasks at scale: 100,000 files against 100,000 tasks.

Question: how long does ``match_files`` take on the exact path for 100k x 100k (goal:
<= 1 s), and what does the fuzzy fallback cost on what is left?
Method: wall time of one ``match_files`` call; tasks are Label Studio uploads
(``/data/upload/<project>/<8 hex>-<name>``) whose names went through the upload
sanitising; files are the local names (spaces, brackets). ``--fuzzy-left`` files have
another extension (.jpeg) so that they only match by fuzzy similarity. Every pair is checked
against the truth (file i, task i + 1) before the times are printed.
Command: ``.venv/bin/python benchmarks/matching.py``.
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from importlib.metadata import version

from prelabel.labelstudio.matching import MatchResult, match_files, name_key


def _check(files: list[str], renamed: int, *results: MatchResult) -> None:
    """Exits unless every result paired file i with task i + 1, the renamed files by stem or
    fuzzy similarity and every other file exactly."""
    truth = {f: i + 1 for i, f in enumerate(files)}
    for result in results:
        pairs = {m.file: m.task_id for m in result.matches}
        if pairs != truth or len(result.matches) != len(files):
            right = sum(truth.get(f) == t for f, t in pairs.items())
            raise SystemExit(f"{len(result.matches)} pairs, {right} right, of {len(files)} files")
        how = {m.file: m.how for m in result.matches}
        if any(how[f] not in {"stem", "fuzzy"} for f in files[:renamed]) or any(
            how[f] != "exact" for f in files[renamed:]
        ):
            raise SystemExit("a file was paired another way than its name allows")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--fuzzy-left", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(0)
    files = [f"/data/set/Site {i // 1000} Photo ({i}).jpg" for i in range(args.n)]
    tasks = [
        (i + 1, f"/data/upload/7/{rng.getrandbits(32):08x}-{name_key(f.rsplit('/', 1)[1])}")
        for i, f in enumerate(files)
    ]
    for i in range(args.fuzzy_left):  # another extension locally: only fuzzy can pair these
        files[i] = files[i].replace(".jpg", ".jpeg")
    print(
        f"machine: {platform.machine()} python {platform.python_version()}; rapidfuzz {version('rapidfuzz')}"
    )
    exact = float("inf")
    for _ in range(3):  # best of 3
        start = time.perf_counter()
        result = match_files(files, tasks, fuzzy=False)
        exact = min(exact, time.perf_counter() - start)
    start = time.perf_counter()
    full = match_files(files, tasks)
    with_fuzzy = time.perf_counter() - start
    fuzzy = sum(m.how in {"fuzzy", "stem"} for m in full.matches)
    ambiguous = sum(u.reason.startswith("ambiguous") for u in full.unmatched_files)
    _check(files, args.fuzzy_left, result, full)
    print(f"{args.n:,} files x {args.n:,} tasks")
    print(f"exact path: {exact:.3f} s (best of 3), {len(result.matches):,} matched")
    print(
        f"with fallbacks on {args.fuzzy_left} renamed: {with_fuzzy:.3f} s, {fuzzy} stem/fuzzy matches, "
        f"{ambiguous} reported ambiguous, {len(full.unmatched_files)} unmatched"
    )


if __name__ == "__main__":
    main()
