"""The numpy brush RLE codec against label-studio-sdk's encoder and decoder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from label_studio_sdk.converter.brush import decode_rle, encode_rle, mask2rle

from prelabel.convert.brush import decode_values, encode_values
from prelabel.convert.masks import brush_to_mask, mask_to_brush
from prelabel.core.errors import MaskError

# Run lengths at every chunk-width boundary of the format, and past the 65,536 split.
EDGE_LENGTHS = [1, 2, 3, 7, 8, 9, 15, 16, 17, 255, 256, 257, 65_535, 65_536, 65_537, 131_072, 131_073]

run_lengths = st.one_of(st.sampled_from(EDGE_LENGTHS), st.integers(1, 600))


def _from_runs(lengths: list[int], values: list[int]) -> np.ndarray:
    return np.repeat(np.asarray(values, np.uint8), lengths)


def _sdk_decoded_mask(rle: list[int], height: int, width: int) -> np.ndarray:
    return (decode_rle(rle).reshape(height, width, 4)[:, :, 3] > 0).astype(np.uint8)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(run_lengths, st.integers(0, 255)), min_size=1, max_size=8))
def test_value_stream_matches_sdk_bytes(runs: list[tuple[int, int]]) -> None:
    values = _from_runs([n for n, _ in runs], [v for _, v in runs])
    expected = encode_rle(values)
    assert encode_values(values) == expected
    lengths, decoded = decode_values(expected)
    assert np.array_equal(np.repeat(decoded, lengths), decode_rle(expected))


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    """Masks from pixel runs (so RGBA runs of 4n), including 1xN and Nx1 shapes."""
    height = draw(st.integers(1, 40))
    width = draw(st.integers(1, 40))
    shape = draw(st.sampled_from(["grid", "row", "column"]))
    if shape == "row":
        height, width = 1, draw(st.integers(1, 70_000))
    elif shape == "column":
        height, width = draw(st.integers(1, 70_000)), 1
    total = height * width
    flat = np.zeros(total, np.uint8)
    position, value = 0, draw(st.integers(0, 1))
    while position < total:
        length = draw(st.one_of(st.sampled_from([1, 2, 4, 16, 64, 65, 16_384, 16_385]), st.integers(1, 500)))
        flat[position : position + length] = value
        position += length
        value = 1 - value
    return flat.reshape(height, width)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masks())
def test_mask_matches_sdk_mask2rle(mask: np.ndarray) -> None:
    expected = mask2rle(mask * 255)
    assert mask_to_brush(mask) == expected
    assert mask_to_brush(mask.astype(bool)) == expected
    decoded = brush_to_mask(expected, *mask.shape)
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, mask)
    assert np.array_equal(decoded, _sdk_decoded_mask(expected, *mask.shape))


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((7, 9), np.uint8),  # all empty: one long run
        np.ones((7, 9), np.uint8),  # all full
        np.zeros((1, 100), np.uint8),  # 400 values: header 53 + one 27-bit chunk = 80 bits, byte-aligned
        np.ones((1, 1), np.uint8),  # a single pixel
        np.eye(5, dtype=np.uint8),  # many short runs
        np.ones((300, 300), np.uint8),  # 360,000 values: split into 65,536-long repeats
    ],
)
def test_edge_masks(mask: np.ndarray) -> None:
    expected = mask2rle(mask * 255)
    assert mask_to_brush(mask) == expected
    assert np.array_equal(brush_to_mask(expected, *mask.shape), mask)


def test_byte_aligned_stream_gets_a_whole_padding_byte() -> None:
    # 53 header bits + 27 bits = 80 bits: the SDK appends 8 zero bits anyway.
    rle = mask_to_brush(np.zeros((1, 100), np.uint8))
    assert len(rle) == 11
    assert rle[-1] == 0


def _bits_to_bytes(bits: str) -> list[int]:
    bits += "0" * (8 - len(bits) % 8)
    return [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]


def test_decodes_literal_blocks_written_by_the_labeling_ui() -> None:
    # The front end's encoder writes literal blocks of several values (RGBA of a colour).
    header = f"{8:032b}" + f"{7:05b}" + "0010" + "0011" + "0111" + "1111"
    literal = "0" + "00" + f"{4 - 1:03b}" + "".join(f"{v:08b}" for v in (255, 0, 0, 128))
    repeat = "1" + "00" + f"{4 - 1:03b}" + f"{0:08b}"
    rle = _bits_to_bytes(header + literal + repeat)
    assert np.array_equal(np.repeat(*reversed(decode_values(rle))), decode_rle(rle))  # same as the SDK
    assert brush_to_mask(rle, 1, 2).tolist() == [[1, 0]]


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ([], "too short"),  # no header
        ([0, 0, 0], "too short"),  # partial header
        (_bits_to_bytes(f"{100:032b}" + f"{7:05b}" + "0010001101111111"), "truncated"),  # no chunks
        ([300, 1, 2, 3, 4, 5, 6, 7], "list of bytes"),  # not bytes
        (_bits_to_bytes(f"{4:032b}" + f"{15:05b}" + "0010001101111111" + "1000" * 8), "word size"),
    ],
)
def test_malformed_rle_raises_mask_error(rle: list[int], message: str) -> None:
    with pytest.raises(MaskError, match=message):
        decode_values(rle)


def test_size_mismatch_names_both_sizes() -> None:
    rle = mask_to_brush(np.ones((4, 5), np.uint8))
    with pytest.raises(MaskError, match=r"80 values, a 5x5 mask needs 100"):
        brush_to_mask(rle, 5, 5)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 2, 1), np.uint8),  # 3-D
        np.full((2, 2), 255, np.uint8),  # 0/255 instead of 0/1
        np.full((2, 2), -1, np.int16),  # negative
        np.zeros((2, 2), np.float32),  # float
        np.zeros((0, 3), np.uint8),  # empty
    ],
)
def test_mask_to_brush_refuses_non_binary_masks(bad: np.ndarray) -> None:
    with pytest.raises(MaskError):
        mask_to_brush(bad)


@st.composite
def any_stream(draw: st.DrawFn) -> list[int]:
    """Any valid stream: literal blocks and repeats of every width, as other encoders write."""
    widths = (3, 4, 8, 16)
    bits, total = [], 0
    for _ in range(draw(st.integers(1, 12))):
        index = draw(st.integers(0, 3))
        count = draw(st.integers(1, min(1 << widths[index], 300 if index == 3 else 1 << widths[index])))
        repeat = draw(st.booleans())
        values = draw(
            st.lists(st.integers(0, 255), min_size=1 if repeat else count, max_size=1 if repeat else count)
        )
        field = f"{count - 1:0{widths[index]}b}"
        bits.append(("1" if repeat else "0") + f"{index:02b}" + field + "".join(f"{v:08b}" for v in values))
        total += count
    header = f"{total:032b}" + f"{7:05b}" + "".join(f"{w - 1:04b}" for w in widths)
    return _bits_to_bytes(header + "".join(bits))


@pytest.mark.slow
@settings(max_examples=500, deadline=None)
@given(any_stream())
def test_decodes_any_valid_stream_like_the_sdk(rle: list[int]) -> None:
    lengths, values = decode_values(rle)
    assert (lengths > 0).all()
    assert np.array_equal(np.repeat(values, lengths), decode_rle(rle))
