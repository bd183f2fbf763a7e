"""Label Studio brush RLE, encoded and decoded with array operations.

The format (see DESIGN.md, "Brush RLE"): a most-significant-bit-first bit stream over a
flat run of 8-bit values (RGBA, row-major, so ``H * W * 4`` values for a mask). Header:
32 bits value count, 5 bits (word size - 1), four 4-bit (run-length width - 1) fields.
Then chunks: 1 flag bit (1 = repeat, 0 = literal block), 2 bits width index, (count - 1)
in that width, then one value (repeat) or ``count`` values (literal).

The encoder here emits exactly the bytes of ``label_studio_sdk.converter.brush.encode_rle``
(same chunking, same padding) but computes runs and packs bits with numpy instead of
building a Python string. The decoder accepts any valid stream (the labeling UI writes
literal blocks the SDK never does).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from prelabel.core.errors import MaskError

__all__ = ["decode_values", "encode_runs", "encode_values", "values_to_runs"]

_WORD_SIZE = 8
_WIDTHS = (3, 4, 8, 16)
_HEADER_BITS = 32 + 5 + 4 * 4
_MAX_REPEAT = 1 << 16
_U64 = np.uint64


def values_to_runs(
    values: npt.NDArray[np.uint8],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Maximal runs of equal values in a 1-D array: (lengths, values)."""
    if values.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [values.size])))
    return lengths.astype(np.int64), values[starts]


def encode_values(values: npt.NDArray[np.uint8]) -> list[int]:
    """Brush RLE of a flat uint8 array; the same bytes as the SDK's ``encode_rle``."""
    flat = np.asarray(values)
    if flat.ndim != 1 or flat.dtype != np.uint8:
        raise MaskError(f"brush RLE encodes a 1-D uint8 array, got {flat.dtype} {flat.shape}")
    lengths, run_values = values_to_runs(flat)
    return encode_runs(lengths, run_values, total=flat.size)


def encode_runs(lengths: npt.NDArray[np.int64], values: npt.NDArray[np.uint8], total: int) -> list[int]:
    """Brush RLE from maximal runs (lengths >= 1, neighbours differ) of ``total`` values.

    Chunking follows the SDK: a run of 1 is a one-value literal; 2..8, 9..16, 17..256 use
    widths 3, 4, 8; longer runs are repeat chunks of width 16, each at most 65,536 long,
    the last holding the remainder.
    """
    if total >= 1 << 32:
        raise MaskError(f"brush RLE holds at most 2**32 - 1 values, got {total}")
    lengths = np.asarray(lengths, np.int64)
    run_values = np.asarray(values).astype(_U64)

    # Split long runs: ceil(L / 65536) chunks, all full but the last.
    n_chunks = np.where(lengths > 256, (lengths - 1) // _MAX_REPEAT + 1, 1)
    if int(n_chunks.max(initial=1)) > 1:
        run_of_chunk = np.repeat(np.arange(lengths.size), n_chunks)
        first_chunk = np.cumsum(n_chunks) - n_chunks
        nth = np.arange(run_of_chunk.size) - first_chunk[run_of_chunk]
        is_last = nth == n_chunks[run_of_chunk] - 1
        counts = np.where(is_last, lengths[run_of_chunk] - nth * _MAX_REPEAT, _MAX_REPEAT)
        long_run = lengths[run_of_chunk] > 256
        run_values = run_values[run_of_chunk]
    else:
        counts = lengths
        long_run = lengths > 256

    index = np.select([long_run, counts > 16, counts > 8], [3, 2, 1], 0).astype(_U64)
    width = np.asarray(_WIDTHS, _U64)[index]
    flag = ((counts > 1) | long_run).astype(_U64)
    field = (counts - 1).astype(_U64)
    codes = (flag << (width + 10)) | (index << (width + 8)) | (field << 8) | run_values
    nbits = width + 11

    header = (
        (total << 21) | ((_WORD_SIZE - 1) << 16) | sum((w - 1) << (12 - 4 * i) for i, w in enumerate(_WIDTHS))
    )
    codes = np.concatenate((np.asarray([header], _U64), codes))
    nbits = np.concatenate((np.asarray([_HEADER_BITS], _U64), nbits))
    return _pack_bits(codes, nbits)


def _pack_bits(codes: npt.NDArray[np.uint64], nbits: npt.NDArray[np.uint64]) -> list[int]:
    """Concatenate fields of ``nbits`` (<= 64) bits, MSB first, into bytes.

    Pads as the SDK does: ``8 - bits % 8`` zero bits, a whole byte when already aligned.
    Each field lands in at most two 64-bit words, so the words are built by OR-reducing
    the sorted contributions instead of writing single bits.
    """
    ends = np.cumsum(nbits)
    total_bits = int(ends[-1])
    offsets = ends - nbits
    word = (offsets >> _U64(6)).astype(np.int64)
    end_in_word = (offsets & _U64(63)) + nbits  # 1..127
    fits = end_in_word <= 64
    n_words = (total_bits + 8) // 64 + 1
    words = np.zeros(n_words, _U64)

    # Part in the first word: left-aligned at its offset.
    left_shift = np.where(fits, 64 - end_in_word, 0).astype(_U64)
    right_shift = np.where(fits, 0, end_in_word - 64).astype(_U64)
    _or_sorted(words, word, (codes << left_shift) >> right_shift)
    # Spill into the next word.
    spill = ~fits
    if spill.any():
        spill_shift = (128 - end_in_word[spill]).astype(_U64)
        _or_sorted(words, word[spill] + 1, codes[spill] << spill_shift)

    n_bytes = total_bits // 8 + 1
    return list(words.astype(">u8").tobytes()[:n_bytes])


def _or_sorted(
    words: npt.NDArray[np.uint64], index: npt.NDArray[np.int64], parts: npt.NDArray[np.uint64]
) -> None:
    """``words[index] |= parts`` for a sorted ``index`` that may repeat."""
    if index.size == 0:
        return
    boundaries = np.flatnonzero(np.diff(index)) + 1
    starts = np.concatenate(([0], boundaries))
    words[index[starts]] |= np.bitwise_or.reduceat(parts, starts)


def decode_values(
    rle: Sequence[int] | bytes,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
    """Runs (lengths, values) of the flat value stream a brush RLE holds.

    ``np.repeat(values, lengths)`` equals the SDK's ``decode_rle(rle)``. Raises
    ``MaskError`` for a stream that is too short, truncated or not 8-bit.
    """
    try:
        data = np.frombuffer(bytes(rle), np.uint8)
    except (ValueError, TypeError) as exc:
        raise MaskError(f"brush RLE must be a list of bytes (0..255): {exc}") from exc
    n_bits = data.size * 8
    if n_bits < _HEADER_BITS:
        raise MaskError(f"brush RLE too short: {data.size} bytes, the header alone needs 7")
    windows = _windows(data)

    header = int(windows[0] >> _U64(11))
    total = header >> 21
    word_size = ((header >> 16) & 31) + 1
    widths = [((header >> (12 - 4 * i)) & 15) + 1 for i in range(4)]
    if word_size != _WORD_SIZE:
        raise MaskError(f"brush RLE word size {word_size} is not supported (only 8-bit values)")

    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    chunks = _chunk_starts(data, np.asarray(widths, np.int64))
    flag, width, count, step = _fields(windows, np.asarray(widths, np.int64), chunks)
    # The chain runs on into the padding; keep the chunks that yield the header's count.
    produced = np.cumsum(count)
    if produced.size == 0 or produced[-1] < total:
        done = int(produced[-1]) if produced.size else 0
        raise MaskError(f"brush RLE truncated: {done} of {total} values decoded")
    last = int(np.searchsorted(produced, total))
    if chunks[last] + step[last] > n_bits:
        raise MaskError(f"brush RLE truncated inside a chunk at bit {int(chunks[last])}")
    chunk = chunks[: last + 1]
    c_flag, c_width, c_count = flag[: last + 1], width[: last + 1], count[: last + 1]
    first_value = chunk + 3 + c_width
    # A repeat chunk is one run; a literal block is `count` runs of length 1.
    runs_per_chunk = np.where(c_flag == 1, 1, c_count)
    chunk_of_run = np.repeat(np.arange(chunk.size), runs_per_chunk)
    nth = np.arange(chunk_of_run.size) - (np.cumsum(runs_per_chunk) - runs_per_chunk)[chunk_of_run]
    value_pos = first_value[chunk_of_run] + _WORD_SIZE * nth
    values = (_at(windows, value_pos) >> _U64(56)).astype(np.uint8)
    lengths = np.where(c_flag[chunk_of_run] == 1, c_count[chunk_of_run], 1)
    # A last chunk may run past the header's count: clip it there (the SDK does too).
    ends = np.cumsum(lengths)
    keep = int(np.searchsorted(ends, total)) + 1
    lengths, values = lengths[:keep], values[:keep]
    lengths[-1] -= int(ends[keep - 1]) - total
    return lengths, values


def _fields(
    windows: npt.NDArray[np.uint64], widths: npt.NDArray[np.int64], at: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], ...]:
    """Flag, count-field width, value count and length in bits of chunks starting at ``at``."""
    win = _at(windows, at)
    flag = (win >> _U64(63)).astype(np.int64)
    width = widths[(win >> _U64(61)).astype(np.int64) & 3]
    count = ((win << _U64(3)) >> (64 - width).astype(_U64)).astype(np.int64) + 1
    step = 3 + width + _WORD_SIZE * np.where(flag == 1, 1, count)
    return flag, width, count, step


def _chunk_starts(data: npt.NDArray[np.uint8], widths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Bit positions of every chunk, from the header to the end of the data.

    Chunks have variable length, so where one starts depends on all before it: the one
    sequential step. It is kept short: ``nxt[p]`` (where a chunk starting at bit p would
    end) is computed for every bit at once, composed with itself to jump 2 chunks at a
    time, the jumps walked in Python, and the chunks between jumps filled in with array
    operations.
    """
    n_bits = data.size * 8
    if n_bits >= 1 << 31:
        raise MaskError(f"brush RLE of {data.size:,} bytes is too large to decode")
    nxt = np.empty(n_bits + 1, np.int32)
    nxt[n_bits] = n_bits  # past the end stays past the end
    padded = np.concatenate((data, np.zeros(4, np.uint8))).astype(np.uint32)
    word = padded[:-4] << 24 | padded[1:-3] << 16 | padded[2:-2] << 8 | padded[3:-1]
    # Bit p = 8 * byte + offset, all offsets at once (one pass of a few array operations:
    # for a 1 KB stream the per-call overhead of eight passes was most of the decode).
    bits = (word[:, None] << np.arange(8, dtype=np.uint32)).ravel()
    width = widths.astype(np.int32)[bits >> np.uint32(29) & np.uint32(3)]
    step = ((bits << np.uint32(3)) >> (32 - width).astype(np.uint32)).astype(np.int32) + 1
    step[bits >= np.uint32(1 << 31)] = 1  # a repeat chunk holds one value
    step *= _WORD_SIZE
    step += width + 3 + np.arange(n_bits, dtype=np.int32)
    np.minimum(step, n_bits, out=nxt[:n_bits])

    # One composition (2 chunks per hop) measured fastest: each costs a full gather.
    hops = 2
    jump = nxt[nxt].data  # a memoryview: indexing it yields Python ints, fast
    sparse: list[int] = []
    append = sparse.append
    p = _HEADER_BITS
    while p < n_bits:
        append(p)
        p = jump[p]
    rows = [np.asarray(sparse, np.int32)]
    for _ in range(hops - 1):
        rows.append(nxt[rows[-1]])
    chain = np.stack(rows, axis=1).ravel()
    return chain[chain < n_bits].astype(np.int64)


def _windows(data: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """For each byte index b, the 64 bits starting at byte b (zero-padded), big-endian."""
    padded = np.concatenate((data, np.zeros(8, np.uint8)))
    n = data.size
    out = np.zeros(n, _U64)
    for k in range(8):
        out |= padded[k : k + n].astype(_U64) << _U64(56 - 8 * k)
    return out


def _at(windows: npt.NDArray[np.uint64], bit: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """The 57+ bits starting at each bit position, left-aligned in a uint64."""
    shifted: npt.NDArray[np.uint64] = windows[bit >> 3] << (bit & 7).astype(_U64)
    return shifted
