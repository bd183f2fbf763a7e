"""Run-length transforms without a full frame: COCO's column-major runs to row-major runs.

Why: COCO RLE runs down columns, Label Studio's brush RLE along rows. Decoding the COCO RLE
to an H x W mask and finding its row runs again walks every pixel twice; a 1080p mask is
2 million pixels and a few thousand runs. Here the row runs come from the column runs
directly: pixel (r, c) starts a row-major run exactly where column c differs from the
column before it at row r, and where two columns differ is the symmetric difference of
their run boundaries. The work is proportional to the number of runs in and out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from prelabel.core.errors import MaskError

__all__ = ["column_runs_to_row_runs", "string_to_counts"]

Runs = tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]


def column_runs_to_row_runs(counts: npt.ArrayLike, height: int, width: int) -> Runs:
    """Row-major pixel runs (lengths, 0/1 values) of the mask whose COCO counts are ``counts``.

    ``counts`` alternate background and foreground, column-major, background first (zero
    lengths allowed); they must sum to ``height * width``. The runs returned are maximal
    (neighbours differ) and sum to ``height * width``.
    """
    runs = np.asarray(counts, np.int64)
    total = height * width
    if runs.ndim != 1 or (runs.size and int(runs.min()) < 0) or int(runs.sum()) != total or total <= 0:
        raise MaskError(f"COCO counts must be non-negative and cover {height}x{width} pixels")
    ends = np.cumsum(runs)
    starts = ends - runs
    fg = (np.arange(runs.size) % 2 == 1) & (runs > 0)
    a, b = starts[fg], ends[fg]
    # Merge foreground intervals that touch (a zero-length background run between them).
    if a.size > 1:
        keep = np.concatenate(([True], a[1:] != b[:-1]))
        a, b = a[keep], np.maximum.reduceat(b, np.flatnonzero(keep))
    if a.size == 0:
        return np.asarray([total], np.int64), np.zeros(1, np.uint8)

    # Split each interval into its per-column segments [r0, r1) of column c.
    first_col, last_col = a // height, (b - 1) // height
    per = last_col - first_col + 1
    which = np.repeat(np.arange(a.size), per)
    col = first_col[which] + (np.arange(which.size) - np.repeat(np.cumsum(per) - per, per))
    base = col * height
    r0 = np.maximum(a[which] - base, 0)
    r1 = np.minimum(b[which] - base, height)

    # Each column's boundaries, compared with the column before it (pair c); column 0 is
    # compared with the last column shifted down one row (the previous row's last pixel).
    key_span = height + 2
    bounds_col = np.concatenate((col, col))
    bounds_row = np.concatenate((r0, r1))
    right = bounds_col * key_span + bounds_row
    is_last = bounds_col == width - 1
    left = np.where(is_last, bounds_row + 1, (bounds_col + 1) * key_span + bounds_row)
    keys = np.sort(np.concatenate((right, left)))
    # A boundary both columns share cancels (an indicator XOR); the rest pair up in order.
    same = keys[1:] == keys[:-1]
    drop = np.zeros(keys.size, bool)
    drop[1:] |= same
    drop[:-1] |= same
    keys = keys[~drop]
    pair = keys[0::2] // key_span
    low = np.minimum(keys[0::2] % key_span, height)
    high = np.minimum(keys[1::2] % key_span, height)
    low = np.where(pair == 0, np.maximum(low, 1), low)
    size = np.maximum(high - low, 0)

    # Every row of every difference interval is one change point r * W + c, in row-major order.
    nth = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
    changes = np.sort((np.repeat(low, size) + nth) * width + np.repeat(pair, size))
    edges = np.concatenate(([0], changes, [total]))
    lengths = np.diff(edges)
    first = np.uint8(a[0] == 0)
    values = (first + np.arange(lengths.size)) % 2
    return lengths.astype(np.int64), values.astype(np.uint8)


def string_to_counts(counts: str) -> npt.NDArray[np.int64]:
    """Run lengths of a compressed COCO counts string (pycocotools' ``rleFrString``), vectorised.

    Each number is 5-bit groups, least significant first, 0x20 marking "more follows" and
    0x10 of the last group its sign; from the fourth number on, each is stored as the
    difference to the one two before it.
    """
    raw = counts.encode("utf-32-le")  # one code point per 4 bytes: any character can be named
    codes = np.frombuffer(raw, np.uint32).astype(np.int64) - 48
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= 64):
        bad = counts[int(np.flatnonzero((codes < 0) | (codes >= 64))[0])]
        raise MaskError(f"COCO RLE counts string has an invalid character {bad!r}")
    if codes.size and codes[-1] & 0x20:
        raise MaskError("COCO RLE counts string ends inside a number")
    ends = np.flatnonzero((codes & 0x20) == 0)
    if ends.size == 0:
        return np.zeros(0, np.int64)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if int((ends - starts).max()) >= 7:  # 35 bits: far past any run of a 100 MP mask
        raise MaskError("COCO RLE counts string holds a number too large for a run length")
    number = np.repeat(np.arange(ends.size), ends - starts + 1)
    shift = 5 * (np.arange(codes.size) - starts[number])
    runs = np.add.reduceat((codes & 0x1F) << shift, starts)
    negative = (codes[ends] & 0x10) != 0
    runs[negative] |= -1 << (shift[ends][negative] + 5)
    # From the fourth number on: a difference to the number two before (two running sums).
    runs[1::2] = np.cumsum(runs[1::2])
    runs[2::2] = np.cumsum(runs[2::2])
    if int(runs.min()) < 0:
        raise MaskError("COCO RLE counts string decodes to a negative run length")
    return runs
