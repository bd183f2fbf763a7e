"""The Triton kernel behind ``prelabel.predict.models.deformable``: multi-scale deformable attention, fused.

One program per (block of queries, image, head): for each level and sampling point it
bilinearly samples the head's value map (``grid_sample``'s bilinear, zero padding,
``align_corners=False``: pixel = location * size - 0.5, corners outside the map count as
zeros) and adds the attention-weighted sample to a (queries, head dim) float32 accumulator
held in registers, which is written once. Nothing of size queries x samples x dim reaches
memory, where the PyTorch path materialises, stacks and sums a [batch x heads, dim, queries,
levels x points] tensor. Inputs may be any float dtype; they are read as float32.

Imported only where triton is (CUDA machines; Triton's interpreter runs it on CPU tensors).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import triton
import triton.language as tl

from prelabel.predict.models.deformable_tile import BLOCK_QUERIES, check_block_queries

__all__ = ["fused_deformable_attention"]


def fused_deformable_attention(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
    block_queries: int = BLOCK_QUERIES,
) -> torch.Tensor:
    """What transformers' ``MultiScaleDeformableAttention`` returns, in one kernel launch.

    value (batch, values, heads, dim); spatial_shapes (levels, 2) height, width of each level's
    map; level_start_index (levels,) where each level starts among the values;
    sampling_locations (batch, queries, heads, levels, points, 2) x, y relative to the map
    (0..1; outside it samples zeros); attention_weights (batch, queries, heads, levels,
    points); block_queries: queries per program (a power of two, 8 to 256). Returns (batch,
    queries, heads * dim) in the promoted dtype of value and weights.
    """
    check_block_queries(block_queries)
    batch, values, heads, dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    dtype = torch.promote_types(value.dtype, attention_weights.dtype)
    out = torch.empty((batch, queries, heads, dim), dtype=dtype, device=value.device)
    # launched on the tensors' device, not the current one (device="cuda:1")
    on_device = torch.cuda.device(value.device) if value.is_cuda else contextlib.nullcontext()
    if out.numel():
        grid = (triton.cdiv(queries, block_queries), batch * heads)
        with on_device:
            _kernel[grid](
                value.contiguous(),
                spatial_shapes.contiguous(),
                level_start_index.contiguous(),
                sampling_locations.contiguous(),
                attention_weights.contiguous(),
                out,
                queries,
                values,
                HEADS=heads,
                DIM=dim,
                LEVELS=levels,
                POINTS=points,
                BLOCK_Q=block_queries,
                BLOCK_D=triton.next_power_of_2(dim),
            )
    return out.view(batch, queries, heads * dim)


@triton.jit  # type: ignore[untyped-decorator]  # triton ships no type information
def _kernel(
    value_ptr: Any,
    shapes_ptr: Any,
    starts_ptr: Any,
    locations_ptr: Any,
    weights_ptr: Any,
    out_ptr: Any,
    queries: Any,
    values: Any,
    HEADS: tl.constexpr,
    DIM: tl.constexpr,
    LEVELS: tl.constexpr,
    POINTS: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    BLOCK_D: tl.constexpr,
) -> None:
    image_head = tl.program_id(1)
    image, head = image_head // HEADS, image_head % HEADS
    query = tl.program_id(0) * BLOCK_Q + tl.arange(0, BLOCK_Q)
    channel = tl.arange(0, BLOCK_D)
    query_ok, channel_ok = query < queries, channel < DIM
    # (batch, queries, heads) row of each query: indexes weights, locations and the output
    row = (image.to(tl.int64) * queries + query) * HEADS + head
    head_values = value_ptr + image.to(tl.int64) * values * HEADS * DIM + head * DIM
    acc = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
    for level in tl.static_range(LEVELS):
        height = tl.load(shapes_ptr + 2 * level).to(tl.int32)
        width = tl.load(shapes_ptr + 2 * level + 1).to(tl.int32)
        start = tl.load(starts_ptr + level)
        for point in tl.static_range(POINTS):
            sample = row * (LEVELS * POINTS) + level * POINTS + point
            weight = tl.load(weights_ptr + sample, mask=query_ok, other=0.0).to(tl.float32)
            x = tl.load(locations_ptr + 2 * sample, mask=query_ok, other=0.0).to(tl.float32)
            y = tl.load(locations_ptr + 2 * sample + 1, mask=query_ok, other=0.0).to(tl.float32)
            # grid_sample's pixel coordinates; clamped so far-away points stay far away as int32
            x = tl.minimum(tl.maximum(x * width - 0.5, -2.0), width + 1.0)
            y = tl.minimum(tl.maximum(y * height - 0.5, -2.0), height + 1.0)
            left, top = tl.floor(x), tl.floor(y)
            right_share, bottom_share = x - left, y - top
            x0, y0 = left.to(tl.int32), top.to(tl.int32)
            acc += _corner(
                head_values,
                x0,
                y0,
                width,
                height,
                start,
                weight * (1 - right_share) * (1 - bottom_share),
                query_ok,
                channel,
                channel_ok,
                HEADS * DIM,
            )
            acc += _corner(
                head_values,
                x0 + 1,
                y0,
                width,
                height,
                start,
                weight * right_share * (1 - bottom_share),
                query_ok,
                channel,
                channel_ok,
                HEADS * DIM,
            )
            acc += _corner(
                head_values,
                x0,
                y0 + 1,
                width,
                height,
                start,
                weight * (1 - right_share) * bottom_share,
                query_ok,
                channel,
                channel_ok,
                HEADS * DIM,
            )
            acc += _corner(
                head_values,
                x0 + 1,
                y0 + 1,
                width,
                height,
                start,
                weight * right_share * bottom_share,
                query_ok,
                channel,
                channel_ok,
                HEADS * DIM,
            )
    out = out_ptr + row[:, None] * DIM + channel[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=query_ok[:, None] & channel_ok[None, :])


@triton.jit  # type: ignore[untyped-decorator]  # triton ships no type information
def _corner(
    head_values: Any,
    x: Any,
    y: Any,
    width: Any,
    height: Any,
    start: Any,
    weight: Any,
    query_ok: Any,
    channel: Any,
    channel_ok: Any,
    ROW: tl.constexpr,
) -> Any:
    """One bilinear corner's weighted values (BLOCK_Q, BLOCK_D); zeros where it is off the map."""
    inside = query_ok & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    position = (start + y * width + x).to(tl.int64)
    mask = inside[:, None] & channel_ok[None, :]
    sampled = tl.load(head_values + position[:, None] * ROW + channel[None, :], mask=mask, other=0.0)
    return weight[:, None] * sampled.to(tl.float32)
