"""Brush RLE: prelabel's numpy codec against label-studio-sdk's, in the same run.

Question: how much faster are ``prelabel.convert.masks.mask_to_brush`` / ``brush_to_mask`` than
the SDK's ``mask2rle`` / ``decode_rle`` (the goal is >= 10x each), with identical bytes?
Method: for each mask kind, the best of ``--repeat`` timed calls of each side
(``time.perf_counter``); the SDK decode includes taking the alpha channel, as its own
exporters do. Every output is checked equal before any figure is printed.
Data: synthetic masks of ``--height`` x ``--width`` (default 1080p) of four kinds:
one ellipse (a small filled ellipse, 108 x 192 px at 1080p: a brush RLE of about 1 KB, where
fixed costs and writing the output dominate), one blob (a disc), hundreds of blobs (300
random rectangles), noisy edges (a disc whose 40-px rim is random pixels).
Command: ``.venv/bin/python benchmarks/brush_rle.py`` (add ``--height 120 --width 160``
for a quick run).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from prelabel.convert.masks import brush_to_mask, mask_to_brush


def make_masks(height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The four mask kinds, uint8 0/1, (height, width)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    radius = min(height, width) * 0.28
    distance = np.sqrt((yy - height / 2) ** 2 + (xx - width / 2) ** 2)
    blob = (distance < radius).astype(np.uint8)
    ry, rx = max(1.0, height * 0.05), max(1.0, width * 0.05)
    ellipse = (((yy - height / 2) / ry) ** 2 + ((xx - width / 2) / rx) ** 2 < 1).astype(np.uint8)
    blobs = np.zeros((height, width), np.uint8)
    size = max(2, min(height, width) // 27)
    for _ in range(300):
        y, x = rng.integers(0, height), rng.integers(0, width)
        r = rng.integers(max(1, size // 8), size)
        blobs[max(0, y - r) : y + r, max(0, x - r) : x + r] = 1
    noisy = blob.copy()
    rim = np.abs(distance - radius) < max(2, min(height, width) // 27)
    noisy[rim] = rng.integers(0, 2, size=int(rim.sum()))
    return {"one ellipse": ellipse, "one blob": blob, "hundreds of blobs": blobs, "noisy edges": noisy}


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Fastest wall time in seconds of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def run(height: int, width: int, repeat: int) -> list[dict[str, Any]]:
    """Time both codecs on every mask kind; raises if any output differs."""
    rows = []
    for kind, mask in make_masks(height, width).items():
        sdk_enc, sdk_rle = best_of(lambda m=mask: mask2rle(m * 255), repeat)
        our_enc, our_rle = best_of(lambda m=mask: mask_to_brush(m), repeat)
        if our_rle != sdk_rle:
            raise SystemExit(f"{kind}: encoded bytes differ from the SDK's")
        sdk_dec, sdk_mask = best_of(
            lambda r=sdk_rle: (decode_rle(r).reshape(height, width, 4)[:, :, 3] > 0).astype(np.uint8), repeat
        )
        our_dec, our_mask = best_of(lambda r=our_rle: brush_to_mask(r, height, width), repeat)
        if not (np.array_equal(our_mask, mask) and np.array_equal(sdk_mask, mask)):
            raise SystemExit(f"{kind}: decoded masks differ")
        rows.append(
            {
                "kind": kind,
                "rle_bytes": len(our_rle),
                "sdk_encode_ms": sdk_enc * 1e3,
                "prelabel_encode_ms": our_enc * 1e3,
                "encode_ratio": sdk_enc / our_enc,
                "sdk_decode_ms": sdk_dec * 1e3,
                "prelabel_decode_ms": our_dec * 1e3,
                "decode_ratio": sdk_dec / our_dec,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per side; the best counts")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}; "
        f"numpy {np.__version__}; label-studio-sdk {version('label-studio-sdk')}"
    )
    print(f"masks: {args.height}x{args.width}, best of {args.repeat}")
    header = f"{'kind':<18} {'RLE bytes':>9} | {'encode SDK':>10} {'ours':>8} {'ratio':>6} | "
    print(header + f"{'decode SDK':>10} {'ours':>8} {'ratio':>6}")
    for row in run(args.height, args.width, args.repeat):
        print(
            f"{row['kind']:<18} {row['rle_bytes']:>9} | {row['sdk_encode_ms']:>8.2f}ms "
            f"{row['prelabel_encode_ms']:>6.2f}ms {row['encode_ratio']:>5.1f}x | "
            f"{row['sdk_decode_ms']:>8.2f}ms "
            f"{row['prelabel_decode_ms']:>6.2f}ms {row['decode_ratio']:>5.1f}x"
        )


if __name__ == "__main__":
    main()
