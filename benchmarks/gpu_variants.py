"""Grounding DINO -> SAM 2: the adapter's speed settings against its defaults, in one run.

Question: which of the remaining speed levers make the batched adapter faster on a GPU, and do
they keep its outputs? The fused deformable-attention kernel off (transformers' PyTorch
path), eager attention (the default is transformers' choice: SDPA wherever a model supports
it, so "sdpa" is the default row), float16 instead of bfloat16 autocast, channels-last models
and pixels, and the kernel's query block at 16 and 64 instead of 32.
Method: the checkpoints of ``benchmarks.grounded_sam2`` (random weights, full size unless
``--tiny``; same JPEGs, prompt, thresholds at 0, ``--boxes`` per image), written once; each
variant is an adapter with one option changed, loaded from them (the float16 variant shares
the default's loaded models: dtype is applied per call; one set of models at a time), fed
through ``prelabel.predict.stages`` as the flows do at one batch size (the first of
``--batch-sizes``), after one warm-up batch, timed ``--repeat`` times: the best run counts,
and the spread of the runs ((best - worst) / best) says how much of a ratio is noise.
Each row: images/s end to end, its ratio to the default's, peak GPU memory, and its outputs
against the default's: the largest score and box-corner difference (pixels) over detections
in the same order, and masks equal (worst IoU). Only eager attention is expected to change
outputs (transformers' eager BERT does not apply Grounding DINO's text mask; the adapter
gives it its own cache key); the others should agree up to the order of float sums.
Checks, before any ratio is printed (exit non-zero otherwise): every variant gives detections
for every image, as many per image as the default; the variants other than eager attention
keep the default's boxes within ``--max-box-difference`` pixels and its masks at an IoU of at
least ``--min-iou``.
Command (GPU): ``python -m benchmarks.gpu_variants --images 64 --batch-sizes 16``; the tests
run it with ``--tiny --device cpu --images 4``. ``--json PATH`` writes the table.
"""

from __future__ import annotations

import gc
from functools import partial
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

from benchmarks.grounded_sam2 import (
    _batched,
    _compare,
    _gib,
    _items,
    _jpegs,
    _timed,
    header,
    model_options,
    parser,
    write_json,
)
from prelabel.predict.models import create_model
from prelabel.predict.models.grounded_sam2 import GroundedSam2
from prelabel.records import Detections

# name -> the adapter options it changes (the default row changes none); the variants that share
# the default's loaded models come first, so that no two sets of models are loaded at once
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "float16": {"dtype": "float16"},
    "no fused attention": {"fused_attention": False},
    "eager attention": {"attn_implementation": "eager"},
    "channels last": {"channels_last": True},
    "block 16": {"block_queries": 16},
    "block 64": {"block_queries": 64},
}
SHARED_WHEN = {"dtype"}  # options applied per call: the variant reuses the default's loaded models
CHANGES_OUTPUTS = {"eager attention"}  # another model (transformers' eager BERT): compared, not checked


def _difference(got: list[Detections], default: list[Detections]) -> tuple[float | None, float | None]:
    """The largest score and box-corner difference against the default's detections, image by
    image in the same order; None where an image's count differs."""
    scores = boxes = 0.0
    for a, b in zip(got, default, strict=True):
        if len(a) != len(b):
            return None, None
        if len(a):
            scores = max(scores, float(np.abs(a.scores - b.scores).max()))
            boxes = max(boxes, float(np.abs(a.xyxy - b.xyxy).max()))
    return scores, boxes


def main() -> None:
    flags = parser((__doc__ or "").split("\n")[0])
    flags.add_argument("--repeat", type=int, default=2, help="timed runs per variant (the best counts)")
    flags.add_argument(
        "--max-box-difference",
        type=float,
        default=4.0,
        help="pixels a box corner may move against the default's",
    )
    flags.add_argument("--min-iou", type=float, default=0.8, help="the worst mask IoU against the default's")
    args = flags.parse_args()
    batch = int(args.batch_sizes.split(",")[0])
    report = header(args) | {"batch": batch, "variants": []}
    jpegs = _jpegs(args.images, args.width, args.height)
    rows: list[dict[str, Any]] = []
    with TemporaryDirectory() as tmp:
        options = model_options(Path(tmp), args) | {"batch_size": batch}
        reference: list[Detections] = []
        base: GroundedSam2 | None = None
        for name, change in VARIANTS.items():
            adapter: GroundedSam2 = create_model("grounded-sam2", **options | change)  # type: ignore[assignment]
            if base is not None and set(change) <= SHARED_WHEN:
                adapter._models = base._load()
            elif base is not None:
                base._models = None  # no later variant shares them: peak memory is each one's own
                gc.collect()
            _batched(adapter, _items(jpegs[:batch]), batch)  # warm-up: loading, compiling the kernel
            runs = [
                _timed(partial(_batched, adapter, _items(jpegs), batch), args.device)
                for _ in range(max(1, args.repeat))
            ]
            found = runs[0][0]
            seconds = min(run[1] for run in runs)
            peaks = [run[2] for run in runs if run[2] is not None]
            if base is None:
                base, reference = adapter, found
            if len(found) != args.images:
                raise SystemExit(f"{name}: detections for {len(found)} of {args.images} images")
            checked = name not in CHANGES_OUTPUTS
            equal, compared, worst = _compare(
                found, [list(d.masks) for d in reference], args.min_iou if checked else 0.0
            )
            scores, boxes = _difference(found, reference)
            if boxes is None:
                raise SystemExit(f"{name}: another count of detections than the default's on some image")
            if checked and boxes > args.max_box_difference:
                raise SystemExit(f"{name}: a box corner {boxes:.3f} px from the default's")
            rows.append(
                {
                    "variant": name,
                    "options": change,
                    "images_per_s": args.images / seconds,
                    "spread": 1 - seconds / max(run[1] for run in runs),
                    "peak_gib": max(peaks) if peaks else None,
                    "max_score_difference": scores,
                    "max_box_difference_px": boxes,
                    "masks_equal": equal,
                    "masks_compared": compared,
                    "worst_iou": worst,
                }
            )
            if adapter is not base:
                adapter._models = None
                gc.collect()

    print(f"\nbatch {batch}; ratio: images/s against the default's; differences: against its outputs")
    print(
        f"{'variant':20}  images/s  spread  ratio  peak memory  max score diff  max box diff  "
        "masks equal (worst IoU)"
    )
    for row in rows:
        row["ratio"] = row["images_per_s"] / rows[0]["images_per_s"]
        scores, boxes = row["max_score_difference"], row["max_box_difference_px"]
        diff = f"{scores:14.2e}  {boxes:9.3f} px"
        print(
            f"{row['variant']:20}  {row['images_per_s']:8.2f}  {row['spread']:6.1%}  {row['ratio']:5.2f}  "
            f"{_gib(row['peak_gib']):>11}  {diff}  {row['masks_equal']:5d}/{row['masks_compared']:<5d} "
            f"({row['worst_iou']:.6f})"
        )
    best = max(rows, key=lambda row: row["images_per_s"])
    print(f"fastest: {best['variant']} ({best['ratio']:.2f}x the default)")
    report["variants"] = rows
    write_json(args.json, report)


if __name__ == "__main__":
    main()
