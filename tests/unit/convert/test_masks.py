"""COCO RLE <-> masks <-> brush RLE."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from label_studio_sdk.converter.brush import mask2rle
from pycocotools import mask as coco_mask

from prelabel.convert.masks import (
    coco_area,
    coco_to_brush,
    coco_to_mask,
    mask_to_coco,
    normalize_coco,
)
from prelabel.core.errors import MaskError

binary_masks = hnp.arrays(
    np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, max_side=30), elements=st.integers(0, 1)
)


@settings(max_examples=300, deadline=None)
@given(binary_masks)
def test_coco_round_trip_and_direct_brush(mask: np.ndarray) -> None:
    rle = mask_to_coco(mask)
    assert isinstance(rle["counts"], str)
    assert rle["size"] == list(mask.shape)
    assert np.array_equal(coco_to_mask(rle), mask)
    assert coco_area(rle) == int(mask.sum())
    assert coco_to_brush(rle) == mask2rle(mask * 255)


def _uncompressed(mask: np.ndarray) -> dict[str, object]:
    """Column-major run lengths starting with zeros, the COCO 'iscrowd' form."""
    flat = mask.ravel(order="F")
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = int(pixel), 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


@pytest.mark.parametrize("form", ["str", "bytes", "list"])
def test_every_counts_form_decodes(form: str) -> None:
    mask = np.zeros((6, 8), np.uint8)
    mask[1:4, 2:7] = 1
    compressed = coco_mask.encode(np.asfortranarray(mask))
    rle = {
        "str": {"size": [6, 8], "counts": compressed["counts"].decode()},
        "bytes": {"size": [6, 8], "counts": compressed["counts"]},
        "list": _uncompressed(mask),
    }[form]
    assert np.array_equal(coco_to_mask(rle), mask)
    assert normalize_coco(rle)["counts"] == compressed["counts"].decode()


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"counts": "PP2"}, "size"),  # no size
        ({"size": [0, 4], "counts": []}, "size"),  # zero height
        ({"size": [2, -1], "counts": []}, "size"),  # negative width
        ({"size": [2, 2], "counts": 5}, "counts"),  # counts of the wrong type
        ({"size": [2, 2], "counts": [1, 2]}, "cover 3 pixels"),  # too few pixels
        ({"size": [2, 2], "counts": [4, 2]}, "cover 6 pixels"),  # too many: would overflow pycocotools
        ({"size": [2, 2], "counts": [2, -2, 4]}, "non-negative"),  # negative run
        ({"size": [2, 2], "counts": "\x01\x02"}, "invalid character"),  # garbage string
        ({"size": [2, 2], "counts": "a"}, "ends inside"),  # continuation bit set on the last char
        ({"size": [4, 4], "counts": "0"}, "cover 0 pixels"),  # string for the wrong size
    ],
)
def test_malformed_coco_rle_raises(rle: dict[str, object], message: str) -> None:
    with pytest.raises(MaskError, match=message):
        coco_to_mask(rle)
