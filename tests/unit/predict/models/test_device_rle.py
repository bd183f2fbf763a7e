"""Masks run-length encoded by torch (CPU here, CUDA when present) against pycocotools, and brush
RLE built from COCO runs against the full-frame path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pycocotools import mask as coco_mask

from prelabel.convert.brush import values_to_runs
from prelabel.convert.masks import coco_to_brush, coco_to_mask, mask_to_brush, mask_to_coco
from prelabel.convert.runlengths import column_runs_to_row_runs, string_to_counts
from prelabel.core.errors import MaskError
from prelabel.predict.models.rle import masks_to_coco, masks_to_runs


def _reference(mask: np.ndarray) -> dict[str, object]:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


@st.composite
def mask_stacks(draw: st.DrawFn) -> np.ndarray:
    """(n, H, W) bool stacks of odd and degenerate sizes: random, blocky, empty, full, one pixel."""
    n = draw(st.integers(1, 4))
    height, width = draw(st.integers(1, 37)), draw(st.integers(1, 41))
    kind = draw(st.sampled_from(["random", "blocks", "empty", "full", "one pixel"]))

    def where() -> tuple[int, int, int]:
        return draw(st.integers(0, n - 1)), draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))

    if kind == "random":
        return draw(hnp.arrays(np.bool_, (n, height, width)))
    stack = np.zeros((n, height, width), bool)
    if kind == "full":
        stack[:] = True
    elif kind == "one pixel":
        stack[where()] = True
    elif kind == "blocks":
        for _ in range(draw(st.integers(1, 5))):
            m, y, x = where()
            stack[m, y : y + draw(st.integers(1, 20)), x : x + draw(st.integers(1, 20))] = True
    return stack


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mask_stacks())
def test_cpu_torch_rle_equals_pycocotools(stack: np.ndarray) -> None:
    expected = [_reference(mask) for mask in stack]
    assert masks_to_coco(torch.from_numpy(stack)) == expected
    # Logits thresholded on the device give the same as thresholding first.
    logits = torch.from_numpy(np.where(stack, 2.5, -1.0).astype(np.float32))
    assert masks_to_coco(logits, threshold=0.0) == expected
    for runs, mask in zip(masks_to_runs(torch.from_numpy(stack)), stack, strict=True):
        assert int(runs.sum()) == mask.size and (runs[1:] > 0).all()


@pytest.mark.parametrize(
    ("stack", "counts"),
    [
        (np.zeros((1, 3, 4), bool), [12]),  # empty: background only
        (np.ones((1, 3, 4), bool), [0, 12]),  # full: an empty first background run
        (np.eye(1, 6, 5, dtype=bool).reshape(1, 2, 3), [5, 1]),  # one pixel, the last one
        (np.ones((1, 1, 1), bool), [0, 1]),  # one pixel image
    ],
)
def test_edge_masks(stack: np.ndarray, counts: list[int]) -> None:
    assert masks_to_runs(torch.from_numpy(stack))[0].tolist() == counts
    assert masks_to_coco(torch.from_numpy(stack)) == [mask_to_coco(stack[0])]


def test_1080p_blobs_equal_pycocotools() -> None:
    yy, xx = np.mgrid[:1080, :1920]
    stack = np.stack([((yy - 540) ** 2 / 300**2 + (xx - c) ** 2 / 200**2) < 1 for c in (0, 960, 1919)])
    assert masks_to_coco(torch.from_numpy(stack)) == [_reference(m) for m in stack]


def test_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(MaskError, match="need a threshold"):
        masks_to_runs(torch.zeros((1, 2, 2)))
    with pytest.raises(MaskError, match=r"\(n, height, width\)"):
        masks_to_runs(torch.zeros((2, 2), dtype=torch.bool))
    with pytest.raises(MaskError, match="0x3"):
        masks_to_runs(torch.zeros((1, 0, 3), dtype=torch.bool))
    assert masks_to_runs(torch.zeros((0, 4, 4), dtype=torch.bool)) == []


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rle_equals_pycocotools() -> None:
    rng = np.random.default_rng(0)
    stacks = [rng.random((10, 1080, 1920)) < 0.5, np.zeros((3, 7, 5), bool), np.ones((2, 1, 9), bool)]
    yy, xx = np.mgrid[:1080, :1920]
    stacks.append(np.stack([((yy - 540) ** 2 + (xx - 100 * k) ** 2) < 250**2 for k in range(10)]))
    for stack in stacks:
        expected = [_reference(mask) for mask in stack]
        on_device = torch.from_numpy(stack).cuda()
        assert masks_to_coco(on_device) == expected
        logits = torch.where(on_device, 3.0, -3.0).to(torch.bfloat16)
        assert masks_to_coco(logits, threshold=0.0) == expected


# Column runs with zero-length runs inside, as an uncompressed COCO list may hold.
@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 23), st.integers(1, 29), st.lists(st.integers(0, 40), min_size=1, max_size=40))
def test_row_runs_from_column_runs_equal_the_frames(height: int, width: int, lengths: list[int]) -> None:
    total = height * width
    counts, covered = [], 0
    for length in lengths:
        take = min(length, total - covered)
        counts.append(take)
        covered += take
    if covered < total:
        counts.append(total - covered)
    flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
    mask = flat.reshape(width, height).T  # column-major runs
    got_lengths, got_values = column_runs_to_row_runs(counts, height, width)
    want_lengths, want_values = values_to_runs(np.ascontiguousarray(mask).ravel())
    np.testing.assert_array_equal(got_lengths, want_lengths)
    np.testing.assert_array_equal(got_values, want_values)
    assert coco_to_brush({"size": [height, width], "counts": counts}) == mask_to_brush(mask)


@pytest.mark.parametrize("density", [0.001, 0.02, 0.5])  # runs path, near the crossover, frame path
def test_coco_to_brush_equals_the_full_frame_path(density: float) -> None:
    rng = np.random.default_rng(1)
    mask = (rng.random((240, 320)) < density).astype(np.uint8)
    mask[60:180, 80:250] = 1
    rle = mask_to_coco(mask)
    assert coco_to_brush(rle) == mask_to_brush(coco_to_mask(rle)) == mask_to_brush(mask)


@settings(max_examples=400, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 1)))
def test_counts_string_decodes_like_pycocotools(mask: np.ndarray) -> None:
    rle = mask_to_coco(mask)
    runs = string_to_counts(rle["counts"])
    assert int(runs.sum()) == mask.size
    flat = np.repeat(np.arange(runs.size) % 2, runs).astype(np.uint8)
    np.testing.assert_array_equal(flat.reshape(mask.shape[1], mask.shape[0]).T, mask)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ("0é", "invalid character"),  # outside pycocotools' alphabet
        ("a", "ends inside a number"),  # a continuation group with nothing after it
        ("1O", "negative run length"),
        ("ooooooo0", "too large"),  # eight 5-bit groups: no run of a 100 MP mask needs that
    ],
)
def test_bad_counts_strings(counts: str, message: str) -> None:
    with pytest.raises(MaskError, match=message):
        string_to_counts(counts)
