"""Grounding DINO's multi-scale deformable attention, fused into one Triton kernel where it can run.

Why: on an H100 about half of Grounding DINO's CUDA time went to transformers' pure-PyTorch
deformable attention (a profile of the GPU path): ``grid_sample`` per level, then
``torch.stack`` of the samples and a weighted ``sum`` over a [batch x heads, dim, queries,
levels x points] float32 tensor (57 ms per batch of 16 for the sum alone). The kernel
(``prelabel.predict.models.deformable_kernel``) samples and sums in registers, as the original CUDA op
of Deformable DETR does.

How it is selected: ``fuse_deformable_attention(model)`` puts a ``FusedDeformableAttention``
in place of each of the model's ``MultiScaleDeformableAttention`` modules (the stateless
``attn`` child of every deformable attention layer; the same seam transformers' kernel-hub
hook ``use_kernel_forward_from_hub("MultiScaleDeformableAttention")`` replaces, which would
need the ``kernels`` package and a download from the Hub). Each call then runs the kernel
when triton is importable and the tensors are on CUDA (or Triton's interpreter is on,
``TRITON_INTERPRET=1``: how the tests run it on CPU tensors), else the unchanged PyTorch
module it replaced. Outputs equal the PyTorch path's up to the order of float32 sums
(tests/unit/predict/models/test_deformable.py states the tolerances). A kernel that
cannot compile or launch on
this machine (no C compiler for Triton's launcher, an unsupported GPU) fails before it has
ever run: that module says why once, as a warning, and keeps to the PyTorch path, so a run
is slower, never lost.

``block_queries`` is the kernel's tile: queries per program (a ``block_queries`` x head-dim
float32 accumulator in registers). 32 is untuned; ``benchmarks/gpu_variants.py`` compares 16,
32 and 64 on a GPU. Any power of two from 8 to 256 gives the same outputs (each query's sum is
its own), so it is a speed setting only.
"""

from __future__ import annotations

import importlib.util
import logging
import os

import torch
from torch import nn

from prelabel.predict.models.deformable_tile import BLOCK_QUERIES, check_block_queries

__all__ = ["FusedDeformableAttention", "fuse_deformable_attention", "triton_available"]

log = logging.getLogger(__name__)


def triton_available() -> bool:
    """Whether triton is installed (CUDA builds of torch bring it; the ``kernels`` extra elsewhere)."""
    return importlib.util.find_spec("triton") is not None


class FusedDeformableAttention(nn.Module):
    """Drop-in for transformers' ``MultiScaleDeformableAttention``: same call, same output."""

    def __init__(self, reference: nn.Module, block_queries: int = BLOCK_QUERIES) -> None:
        super().__init__()
        self.reference = reference  # the PyTorch path: CPU, or no triton
        self.block_queries = check_block_queries(block_queries)
        self.fused = triton_available()
        self.proven = False  # the kernel has run here once: a later error is a real one, raised

    def uses_kernel(self, value: torch.Tensor) -> bool:
        """Whether a call with these values runs the kernel (else the PyTorch path)."""
        return self.fused and (value.is_cuda or os.environ.get("TRITON_INTERPRET") == "1")

    def forward(
        self,
        value: torch.Tensor,
        value_spatial_shapes: torch.Tensor,
        value_spatial_shapes_list: list[tuple[int, int]],
        level_start_index: torch.Tensor,
        sampling_locations: torch.Tensor,
        attention_weights: torch.Tensor,
        im2col_step: int,
    ) -> torch.Tensor:
        if self.uses_kernel(value):
            from prelabel.predict.models.deformable_kernel import fused_deformable_attention

            try:
                fused = fused_deformable_attention(
                    value,
                    value_spatial_shapes,
                    level_start_index,
                    sampling_locations,
                    attention_weights,
                    block_queries=self.block_queries,
                )
            except Exception as exc:
                if self.proven:
                    raise
                self.fused = False
                log.warning(
                    "fused deformable attention cannot run here (%s: %s); using the PyTorch path",
                    type(exc).__name__,
                    str(exc)[:300],
                )
            else:
                self.proven = True
                return fused
        out: torch.Tensor = self.reference(
            value,
            value_spatial_shapes,
            value_spatial_shapes_list,
            level_start_index,
            sampling_locations,
            attention_weights,
            im2col_step,
        )
        return out


def fuse_deformable_attention(model: nn.Module, block_queries: int = BLOCK_QUERIES) -> int:
    """Swap every ``MultiScaleDeformableAttention`` in ``model`` (in place); how many were swapped."""
    check_block_queries(block_queries)
    swapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child).__name__ == "MultiScaleDeformableAttention":
                setattr(module, name, FusedDeformableAttention(child, block_queries))
                swapped += 1
    return swapped
