"""The fused deformable-attention kernel's tile: queries per program, checked without torch.

Here, not in ``prelabel.predict.models.deformable`` (which imports torch), so that the adapter can
check its ``block_queries`` option when it is built (the command line builds adapters to check
their options before any work) while ``import prelabel.predict.models`` stays free of torch.
"""

from __future__ import annotations

from prelabel.core.errors import SettingsError

__all__ = ["BLOCK_QUERIES", "check_block_queries"]

BLOCK_QUERIES = 32  # queries per program: a 32 x head-dim tile (32 x 32 in Grounding DINO tiny)


def check_block_queries(block_queries: object) -> int:
    """``block_queries`` if it is a power of two from 8 to 256 (Triton tiles are powers of two;
    beyond 256 the accumulator spills out of registers), else a clear error."""
    if (
        isinstance(block_queries, bool)
        or not isinstance(block_queries, int)
        or not 8 <= block_queries <= 256
        or block_queries & (block_queries - 1)
    ):
        raise SettingsError(
            f"block_queries {block_queries!r}: use a power of two from 8 to 256 (default {BLOCK_QUERIES})"
        )
    return block_queries
