"""The fused deformable-attention kernel against transformers' PyTorch path.

On CPU the kernel runs in Triton's interpreter, which must be chosen before triton is
imported (``triton.jit`` and triton's own library functions pick it when decorated): the
tests marked ``interpreted`` run in a child pytest with ``TRITON_INTERPRET=1``, started by
``test_kernel_under_the_interpreter``, and skip in any other process. Tolerances: fp32
outputs within 1e-5 (absolute and relative; measured about 3e-7, the order of float32 sums);
the tiny model's logits and boxes within 1e-4.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (the kernels extra)")

from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
from transformers.models.grounding_dino.modeling_grounding_dino import (
    MultiScaleDeformableAttention,
)

from prelabel.core.errors import SettingsError
from prelabel.predict.models import create_model
from prelabel.predict.models.deformable import FusedDeformableAttention, fuse_deformable_attention
from prelabel.predict.models.deformable_kernel import fused_deformable_attention
from prelabel.predict.models.grounded_sam2 import GroundedSam2
from prelabel.records import Detections
from tests.conftest import random_image_item
from tests.support import REPO
from tests.unit.predict.models.test_grounded_sam2 import CLASSES, OPEN

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def interpreted(test: Callable[..., None]) -> Callable[..., None]:
    """Marked for the child pytest that runs Triton's interpreter; skipped in any other process."""
    skip = pytest.mark.skipif(not INTERPRETED, reason="run by test_kernel_under_the_interpreter")
    marked: Callable[..., None] = pytest.mark.interpreted(skip(test))
    return marked


@pytest.mark.slow
@pytest.mark.skipif(INTERPRETED, reason="this is the child pytest")
def test_kernel_under_the_interpreter() -> None:
    """Every ``interpreted`` test, in a child pytest with Triton's interpreter on: all pass, none skip."""
    root = REPO
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "interpreted", __file__],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = child.stdout[-6000:] + child.stderr[-2000:]
    assert child.returncode == 0, report
    summary = child.stdout.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary, report


def _inputs(
    batch: int, heads: int, dim: int, queries: int, points: int, shapes: list[tuple[int, int]], seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random values, weights and locations over [-0.3, 1.3], with some exactly on the map's
    edges (0 and 1), at pixel centres and far outside (+-1e6)."""
    generator = torch.Generator().manual_seed(seed)
    spatial = torch.tensor(shapes)
    sizes = spatial[:, 0] * spatial[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    levels = len(shapes)
    value = torch.randn(batch, int(sizes.sum()), heads, dim, generator=generator)
    locations = torch.rand(batch, queries, heads, levels, points, 2, generator=generator) * 1.6 - 0.3
    flat = locations.view(-1)
    special = torch.tensor([0.0, 1.0, -1e6, 1e6, 0.5])
    picks = torch.randint(0, max(1, flat.numel()), (flat.numel() // 10,), generator=generator)
    flat[picks] = special[torch.arange(len(picks)) % len(special)]
    logits = torch.randn(batch, queries, heads, levels * points, generator=generator)
    weights = logits.softmax(-1).view(batch, queries, heads, levels, points)
    return value, spatial, starts, locations, weights


def _reference(
    value: torch.Tensor,
    spatial: torch.Tensor,
    starts: torch.Tensor,
    locations: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    shapes = [(int(h), int(w)) for h, w in spatial.tolist()]
    out: torch.Tensor = MultiScaleDeformableAttention()(
        value, spatial, shapes, starts, locations, weights, 64
    )
    return out


CASES = {
    # Grounding DINO's layout (8 heads of 32, 4 points), four levels of a small image (one image:
    # the interpreter runs each program in Python; "head dim 24" has a batch of three)
    "grounding dino": (1, 8, 32, 50, 4, [(25, 34), (13, 17), (7, 9), (4, 5)]),
    # odd sizes, a one-pixel level and a one-column level; queries not a multiple of the block
    "odd sizes": (1, 2, 16, 37, 3, [(7, 9), (1, 1), (3, 1)]),
    # a head dim that is not a power of two: the channel tile is masked
    "head dim 24": (3, 1, 24, 33, 2, [(5, 6), (2, 3)]),
    # one query, one point, one level
    "one of each": (1, 1, 8, 1, 1, [(4, 4)]),
}


def test_a_kernel_that_cannot_run_here_falls_back_once_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No C compiler for Triton's launcher, an unsupported GPU: the PyTorch path, said once."""
    import prelabel.predict.models.deformable_kernel as kernel

    def cannot_compile(*args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError("Failed to find C compiler")

    monkeypatch.setattr(kernel, "fused_deformable_attention", cannot_compile)
    module = FusedDeformableAttention(MultiScaleDeformableAttention())
    monkeypatch.setattr(module, "uses_kernel", lambda value: module.fused)
    value, spatial, starts, locations, weights = _inputs(*CASES["one of each"][:5], CASES["one of each"][5])
    shapes = [(int(h), int(w)) for h, w in spatial.tolist()]
    with caplog.at_level("WARNING", logger="prelabel.predict.models.deformable"):
        for _ in range(2):
            out = module(value, spatial, shapes, starts, locations, weights, 64)
            torch.testing.assert_close(out, _reference(value, spatial, starts, locations, weights))
    assert [r.getMessage() for r in caplog.records] == [
        "fused deformable attention cannot run here (RuntimeError: Failed to find C compiler); "
        "using the PyTorch path"
    ]
    module.fused, module.proven = True, True  # once it has run, an error is a real one: raised
    with pytest.raises(RuntimeError, match="C compiler"):
        module(value, spatial, shapes, starts, locations, weights, 64)


@interpreted
@pytest.mark.parametrize("case", CASES)
def test_kernel_equals_the_pytorch_path(case: str) -> None:
    inputs = _inputs(*CASES[case])
    expected = _reference(*inputs)
    got = fused_deformable_attention(*inputs)
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@interpreted
@pytest.mark.parametrize("block", [16, 32, 64])
@pytest.mark.parametrize("case", ["grounding dino", "odd sizes"])
def test_kernel_block_sizes_equal_the_pytorch_path(case: str, block: int) -> None:
    """Queries per program is a speed setting: 50 and 37 queries span 1-4 blocks, the last partial."""
    inputs = _inputs(*CASES[case])
    got = fused_deformable_attention(*inputs, block_queries=block)
    torch.testing.assert_close(got, _reference(*inputs), rtol=1e-5, atol=1e-5)


def test_adapter_passes_its_block_size_to_every_fused_module(tiny_gsam2: dict[str, str]) -> None:
    model = create_model("grounded-sam2", classes=CLASSES, block_queries=64, **tiny_gsam2, **OPEN)
    assert isinstance(model, GroundedSam2)
    blocks = [m.block_queries for m in model._load()[0].modules() if isinstance(m, FusedDeformableAttention)]
    assert blocks == [64, 64, 64]
    with pytest.raises(SettingsError, match="block_queries 24"):
        fused_deformable_attention(*_inputs(*CASES["one of each"]), block_queries=24)


@interpreted
def test_bfloat16_values_as_under_autocast() -> None:
    """bf16 values with float32 weights (CUDA autocast): float32 out, as the PyTorch path's
    ``grid_sample`` (autocast runs it in float32) gives on the same values."""
    value, spatial, starts, locations, weights = _inputs(*CASES["grounding dino"])
    value = value.to(torch.bfloat16)
    got = fused_deformable_attention(value, spatial, starts, locations, weights)
    assert got.dtype == torch.float32
    torch.testing.assert_close(
        got, _reference(value.float(), spatial, starts, locations, weights), rtol=1e-5, atol=1e-5
    )


@interpreted
def test_no_queries() -> None:
    value, spatial, starts, locations, weights = _inputs(2, 2, 16, 0, 4, [(3, 3)])
    assert fused_deformable_attention(value, spatial, starts, locations, weights).shape == (2, 0, 32)


@interpreted
def test_tiny_grounding_dino_outputs_equal_with_the_kernel(tiny_gsam2: dict[str, str]) -> None:
    detector = AutoModelForZeroShotObjectDetection.from_pretrained(tiny_gsam2["detector"]).eval()
    processor = AutoProcessor.from_pretrained(tiny_gsam2["detector"])
    images = [random_image_item(i, (80, 60)).load().rgb for i in range(2)]
    inputs = processor(images=images, text=["car . person ."] * 2, return_tensors="pt")
    with torch.inference_mode():
        expected = detector(**inputs)
        # one per encoder layer (1) and decoder layer (2) of the tiny model
        assert fuse_deformable_attention(detector) == 3
        swapped = [m for m in detector.modules() if isinstance(m, FusedDeformableAttention)]
        assert len(swapped) == 3 and all(m.uses_kernel(inputs["pixel_values"]) for m in swapped)
        got = detector(**inputs)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.pred_boxes, expected.pred_boxes, rtol=1e-4, atol=1e-4)


@interpreted
def test_adapter_fuses_by_default_and_detections_match(tiny_gsam2: dict[str, str]) -> None:
    items = [random_image_item(i, (80, 60)) for i in range(3)]
    fused, plain = (
        create_model("grounded-sam2", classes=CLASSES, fused_attention=flag, **tiny_gsam2, **OPEN)
        for flag in (True, False)
    )
    assert isinstance(fused, GroundedSam2) and isinstance(plain, GroundedSam2)
    counts = [
        sum(isinstance(m, FusedDeformableAttention) for m in a._load()[0].modules()) for a in (fused, plain)
    ]
    assert counts == [3, 0]
    assert fused.signature() == plain.signature()  # equal outputs within tolerance: the same cache
    for a, b in zip(fused.predict(items), plain.predict(items), strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections)
        np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)
        assert a.labels == b.labels and a.masks == b.masks


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CASES)
def test_cuda_kernel_equals_the_pytorch_path(case: str) -> None:
    inputs = [t.cuda() for t in _inputs(*CASES[case])]
    torch.testing.assert_close(fused_deformable_attention(*inputs), _reference(*inputs), rtol=1e-5, atol=1e-5)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # as the adapter runs it
        value, spatial, starts, locations, weights = inputs
        got = fused_deformable_attention(value.bfloat16(), spatial, starts, locations, weights)
        expected = _reference(value.bfloat16(), spatial, starts, locations, weights)
    assert got.dtype == expected.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_adapter_with_and_without_the_kernel(tiny_gsam2: dict[str, str]) -> None:
    items = [random_image_item(i, (96, 64)) for i in range(4)]
    options = {**OPEN, "device": "cuda", "dtype": "float32"}
    fused, plain = (
        create_model("grounded-sam2", classes=CLASSES, fused_attention=flag, **tiny_gsam2, **options)
        for flag in (True, False)
    )
    for a, b in zip(fused.predict(items), plain.predict(items), strict=True):
        assert isinstance(a, Detections) and isinstance(b, Detections)
        np.testing.assert_allclose(a.xyxy, b.xyxy, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-4)
        assert a.labels == b.labels
