"""Binary masks, COCO RLE and Label Studio brush RLE, converted exactly.

Masks are 2-D uint8 arrays of 0/1, shape (height, width) in displayed-image pixels.
COCO RLE goes through pycocotools (column-major runs); brush RLE through the numpy
codec in :mod:`prelabel.convert.brush` (row-major RGBA values, foreground 255 in every channel,
read back from the alpha channel as the labeling UI does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as coco_mask

from prelabel.convert.brush import decode_values, encode_runs
from prelabel.convert.runlengths import column_runs_to_row_runs, string_to_counts
from prelabel.core.errors import MaskError
from prelabel.core.images import DEFAULT_MAX_PIXELS

__all__ = [
    "MAX_MASK_PIXELS",
    "CocoRle",
    "brush_to_mask",
    "coco_area",
    "coco_size",
    "coco_to_brush",
    "coco_to_mask",
    "mask_to_brush",
    "mask_to_coco",
    "normalize_coco",
    "polygon_to_coco",
    "runs_to_coco",
]

CocoRle = dict[str, Any]
"""``{"size": [height, width], "counts": str}``: compressed COCO RLE, JSON-ready."""

Mask = npt.NDArray[np.uint8]


def mask_to_brush(mask: npt.ArrayLike) -> list[int]:
    """Brush RLE of a 2-D bool or 0/1 mask; the SDK's ``mask2rle(mask * 255)`` bytes.

    Runs are found on the (height, width) mask and scaled by 4 (RGBA), so the RGBA array
    is never built.
    """
    flat = _binary(mask).ravel()
    if flat.size == 0:
        raise MaskError("cannot encode an empty mask (0 pixels)")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [flat.size]))) * 4
    values = flat[starts].astype(np.uint8) * np.uint8(255)
    return encode_runs(lengths, values, total=flat.size * 4)


def brush_to_mask(rle: list[int] | bytes, height: int, width: int) -> Mask:
    """Decode a brush RLE to a (height, width) uint8 0/1 mask (alpha > 0 is foreground).

    Raises ``MaskError`` when the RLE does not hold ``height * width`` RGBA pixels.
    """
    if height <= 0 or width <= 0:
        raise MaskError(f"mask size must be positive, got {height}x{width} (height x width)")
    _check_area(height, width)
    lengths, values = decode_values(rle)
    total = int(lengths.sum())
    if total != height * width * 4:
        raise MaskError(
            f"brush RLE holds {total} values, a {height}x{width} mask needs "
            f"{height * width * 4} (height x width x 4 RGBA)"
        )
    # Pixel i's alpha sits at value 4i + 3: a run [s, e) covers pixels [s // 4, e // 4).
    ends = np.cumsum(lengths)
    pixel_ends = ends // 4
    pixel_lengths = np.diff(np.concatenate(([0], pixel_ends)))
    # One block write per run; filling only the foreground slices on zeroed memory was
    # measured no faster, even for a 1 KB ellipse (108 runs: 0.256 vs 0.244 ms).
    mask = np.repeat((values > 0).astype(np.uint8), pixel_lengths)
    return mask.reshape(height, width)


def coco_to_mask(rle: Mapping[str, Any]) -> Mask:
    """Decode COCO RLE (compressed str/bytes counts or an uncompressed list) to 0/1.

    A size above ``MAX_MASK_PIXELS`` is refused before decoding: six characters of RLE can
    declare a 100,000 x 100,000 mask.
    """
    _check_area(*coco_size(rle))
    compressed = normalize_coco(rle)
    decoded = coco_mask.decode({"size": compressed["size"], "counts": compressed["counts"].encode()})
    return np.ascontiguousarray(decoded, dtype=np.uint8)


def mask_to_coco(mask: npt.ArrayLike) -> CocoRle:
    """Compressed COCO RLE of a 2-D bool or 0/1 mask, with ``counts`` as a str."""
    binary = _binary(mask)
    encoded = coco_mask.encode(np.asfortranarray(binary))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def runs_to_coco(counts: npt.ArrayLike, height: int, width: int) -> CocoRle:
    """Compressed COCO RLE from uncompressed counts (column-major, background first).

    The same string ``mask_to_coco`` writes for the mask the counts describe; used where the
    runs were found without a full mask on the host (``prelabel.predict.models.rle``).
    """
    runs = np.asarray(counts, np.int64)
    if runs.ndim != 1 or (runs.size and int(runs.min()) < 0) or int(runs.sum()) != height * width:
        raise MaskError(f"COCO counts must be non-negative and cover {height}x{width} pixels")
    encoded = coco_mask.frPyObjects(
        {"size": [height, width], "counts": runs.astype(np.uint32)}, height, width
    )
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


def polygon_to_coco(points: npt.ArrayLike, height: int, width: int) -> CocoRle:
    """Compressed COCO RLE of one closed ring, (n, 2) pixels, rasterised by pycocotools on a
    ``height`` x ``width`` grid (the rasteriser ``COCOeval`` applies to polygon segmentations,
    so an IoU of two rings here is the one COCO would give)."""
    _check_area(height, width)
    ring = np.asarray(points, np.float64)
    if ring.ndim != 2 or ring.shape[1] != 2 or len(ring) < 3:
        raise MaskError(f"a polygon needs (n >= 3, 2) points, got shape {ring.shape}")
    if not np.isfinite(ring).all():  # pycocotools would rasterise a NaN until memory runs out
        raise MaskError(f"a polygon's points must be finite numbers, got {str(ring.tolist())[:80]}")
    (encoded,) = coco_mask.frPyObjects([ring.ravel().tolist()], height, width)
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


def coco_to_brush(coco_rle: Mapping[str, Any]) -> list[int]:
    """Brush RLE straight from a COCO RLE (any counts form); ``mask_to_brush(coco_to_mask(...))``'s bytes.

    Built from the runs (column-major runs turned into row-major ones), so no H x W mask is
    decoded and walked again; masks with more than one run per 128 pixels (noise, measured
    crossover ~1 per 110 at 1080p) are cheaper through the full frame and go that way.
    """
    height, width, runs = _coco_counts(coco_rle)
    _check_area(height, width)
    if runs.size > height * width // 128:
        return mask_to_brush(coco_to_mask(coco_rle))
    lengths, values = column_runs_to_row_runs(runs, height, width)
    return encode_runs(lengths * 4, values * np.uint8(255), total=height * width * 4)


MAX_MASK_PIXELS = DEFAULT_MAX_PIXELS
"""The largest mask decoded: the image pixel limit's default (100 megapixels)."""


def _check_area(height: int, width: int) -> None:
    if height * width > MAX_MASK_PIXELS:
        raise MaskError(
            f"a {height}x{width} mask is over the {MAX_MASK_PIXELS:,}-pixel limit; refused before decoding"
        )


def coco_size(rle: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of a COCO RLE, validated."""
    size = rle.get("size") if isinstance(rle, Mapping) else None
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
    ):
        raise MaskError(f"COCO RLE 'size' must be [height, width] of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def coco_area(rle: Mapping[str, Any]) -> int:
    """Foreground pixel count of a COCO RLE."""
    compressed = normalize_coco(rle)
    return int(coco_mask.area({"size": compressed["size"], "counts": compressed["counts"].encode()}))


def normalize_coco(rle: Mapping[str, Any]) -> CocoRle:
    """Validate any COCO RLE form and return it compressed with str counts.

    The counts are checked to cover exactly height * width pixels before pycocotools
    sees them: its C decoder trusts them and would write past the mask otherwise.
    """
    height, width, runs = _coco_counts(rle)
    counts = rle.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        return {"size": [height, width], "counts": counts}
    return runs_to_coco(runs, height, width)


def _coco_counts(rle: Mapping[str, Any]) -> tuple[int, int, npt.NDArray[np.int64]]:
    """(height, width, uncompressed counts) of any COCO RLE form, checked to cover the mask."""
    height, width = coco_size(rle)
    counts = rle.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        runs = string_to_counts(counts)
    elif isinstance(counts, list | tuple):
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
            raise MaskError("COCO RLE uncompressed 'counts' must be non-negative ints")
        # Python ints first: a huge count is an error row, not a numpy overflow.
        covered = sum(counts)
        if covered != height * width:
            raise MaskError(
                f"COCO RLE counts cover {covered} pixels, its size {height}x{width} needs {height * width}"
            )
        runs = np.asarray(counts, np.int64)
    else:
        raise MaskError(f"COCO RLE 'counts' must be a str, bytes or list, got {type(counts).__name__}")
    covered = int(runs.sum())
    if covered != height * width:
        raise MaskError(
            f"COCO RLE counts cover {covered} pixels, its size {height}x{width} needs {height * width}"
        )
    return height, width, runs


def _binary(mask: npt.ArrayLike) -> Mask:
    """A 2-D uint8 0/1 view or copy of a bool or 0/1 array; anything else is refused."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise MaskError(f"a mask must be 2-D (height, width), got shape {array.shape}")
    if array.dtype == np.bool_:
        return array.view(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise MaskError(f"a mask must be bool or 0/1 integers, got {array.dtype}; threshold it first")
    if array.size and (array.max() > 1 or array.min() < 0):
        raise MaskError("a mask must hold only 0 and 1; use (mask > 0) for 0/255 masks")
    return array.astype(np.uint8, copy=False)
