"""URL downloads: prelabel's concurrent fetcher against one request at a time.

Question: how much faster is ingesting a URL list with bounded concurrency than a loop of
single downloads, when every request waits on the network? Goal: >= 20x at 50 ms latency.
Method: a local HTTP server (threaded, keep-alive, in its own process) answers every
request after ``--latency`` seconds with a ~10 KB JPEG. ``--urls`` URLs are fetched by
``Fetcher`` (``--concurrency``), and ``--sequential`` of them one at a time by the same
fetcher with concurrency 1 (a full one-at-a-time pass over 10,000 URLs would take over 8
minutes; the per-URL times are compared). Bytes are hashed and dropped as they arrive, as
``ingest`` does; peak memory is the process's maximum resident set size. Both passes must
deliver every URL once with the served image's hash, or the run exits before any ratio.
Command: ``python -m benchmarks.download`` (from the repository root).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import platform
import resource
import time
from typing import Any

import numpy as np
from PIL import Image

from prelabel.core.errors import SourceError
from prelabel.ingest.fetch import Fetcher, FetchOptions
from tests.support.http_faults import Site, serve


def _timed(fetcher: Fetcher, urls: list[str], expected: str) -> float:
    """Seconds to fetch ``urls``; exits unless every URL arrived once, with ``expected``'s SHA-256."""
    failed: list[str] = []
    digests: dict[str, list[str]] = {}

    def take(uri: str, outcome: bytes | SourceError) -> None:
        if isinstance(outcome, SourceError):
            failed.append(uri)
        else:
            digests.setdefault(uri, []).append(hashlib.sha256(outcome).hexdigest())

    start = time.perf_counter()
    fetcher.fetch(urls, take)
    elapsed = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{len(failed)} downloads failed, e.g. {failed[0]}")
    missing = [u for u in urls if u not in digests]
    if missing:
        raise SystemExit(f"{len(missing)} of {len(urls)} URLs never arrived, e.g. {missing[0]}")
    wrong = [u for u, got in digests.items() if got != [expected]]
    if wrong or len(digests) != len(urls):
        raise SystemExit(f"{len(wrong)} URLs arrived other bytes, twice, or unasked, e.g. {wrong[:1]}")
    return elapsed


def _serve(images: dict[str, bytes], latency: float, url: Any, stop: Any) -> None:
    """The server in its own process: its threads must not share the client's interpreter lock."""
    with serve(Site(images, latency=latency)) as site:
        url.put(site.url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--sequential", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    pixels = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    images = {f"{i}.jpg": buffer.getvalue() for i in range(args.urls)}
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    address, stop = multiprocessing.Queue(), multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(images, args.latency, address, stop), daemon=True)
    server.start()
    try:
        base = address.get(timeout=30)
        urls = [f"{base}/img/{name}" for name in images]
        expected = hashlib.sha256(buffer.getvalue()).hexdigest()
        many = _timed(Fetcher(options=FetchOptions(concurrency=args.concurrency)), urls, expected)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        one = _timed(Fetcher(options=FetchOptions(concurrency=1)), urls[: args.sequential], expected)
    finally:
        stop.set()
        server.join(10)
    per_many, per_one = many / len(urls), one / args.sequential
    print(f"{len(urls):,} URLs, {args.latency * 1000:.0f} ms latency, {len(buffer.getvalue()):,} bytes each")
    print(
        f"concurrent ({args.concurrency}): {many:8.2f} s  {per_many * 1000:7.2f} ms/URL  "
        f"peak RSS {peak:.0f} MB"
    )
    print(f"one at a time ({args.sequential} URLs): {one:8.2f} s  {per_one * 1000:7.2f} ms/URL")
    print(f"ratio: {per_one / per_many:.1f}x")


if __name__ == "__main__":
    main()
