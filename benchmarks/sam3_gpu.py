"""SAM 3 with every concept prompt in one batched pass, against a per-image loop and grounded-sam2.

Question: how many 1080p JPEGs per second does ``--model sam3`` label with 10 concept prompts
(boxes and COCO RLE masks on the host), how much does reusing each image's vision features
for all its prompts and batching images buy over the loop people write from transformers'
docs (one forward per image and prompt), and how does it compare with ``grounded-sam2`` on
the same images? Goals on one H100: >= 25 images/s with 10 prompts, >= 4x the loop.
Method: a random-weight SAM 3 of the real architecture (transformers' default config: 840 M
parameters, 1008-pixel input; speed does not depend on the weights; ``--tiny`` for the CPU
smoke run), ``--images`` JPEGs, ``--prompts`` phrases, threshold 0 and ``max_detections`` =
``--instances`` so every image ends with that many regions (merging off: ``merge_iou`` 1.01).
- The loop, per image and phrase: the full forward from pixels (the vision encoder again for
  every phrase), the processor's scores (query x presence sigmoid); per image the best
  ``--instances``, their masks upsampled, thresholded, copied to the host and encoded with
  pycocotools (as the docs' post-processing leaves them). It resizes on the device as the
  adapter does, so both see the same pixels.
- prelabel: batches through ``prelabel.predict.stages`` as in the flows, at ``--batch-sizes``; then
  once more with a ``StageTimer`` for the time per stage (synchronised, so not overlapped).
- grounded-sam2: its adapter at its default batch size on the same images with the same
  phrases as classes (thresholds 0, ``max_detections`` = ``--instances``). Its outputs are
  another model's and are not compared, only its speed.
Before any ratio is printed, each batched run's scores must equal the loop's (relative 1e-3:
bf16 sums in another order) and its masks be equal or at IoU >= ``--min-iou``. Peak GPU
memory per run (``n/a`` on the CPU).
Command (GPU): ``python -m benchmarks.sam3_gpu``; the tests run it with ``--tiny``.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from functools import partial
from importlib.metadata import version
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import torch

from benchmarks.grounded_sam2 import _batched, _gib, _items, _jpegs, _timed
from prelabel.convert.masks import CocoRle, coco_to_mask, mask_to_coco
from prelabel.predict.models import ImageItem, create_model
from prelabel.predict.models.pixels import normalise_pixels
from prelabel.predict.models.runtime import StageTimer, autocast
from prelabel.predict.models.sam3 import TEXT_LENGTH, Sam3
from prelabel.records import Detections
from tests.support.random_models import save_grounding_dino, save_sam2, save_sam3

PHRASES = ["car", "person", "bicycle", "bus", "truck", "traffic light", "stop sign", "dog", "tree", "bench"]
STAGES = ["decode", "copies", "vision", "decoder", "masks"]
Found = list[tuple[list[float], list[CocoRle | None]]]


def _loop(adapter: Sam3, items: Sequence[ImageItem], instances: int) -> Found:
    """Per image and phrase one full forward; per image the best scores and their masks."""
    from transformers import AutoTokenizer

    model, processor = adapter._load()
    device, dtype = adapter.device or "cpu", adapter.dtype
    tokenizer = AutoTokenizer.from_pretrained(adapter.checkpoint.path)
    texts = [
        tokenizer([p], padding="max_length", max_length=TEXT_LENGTH, return_tensors="pt").to(device)
        for p in adapter.phrases
    ]
    side = (processor["size"]["height"], processor["size"]["width"])
    out: Found = []
    for item in items:
        image = item.load().rgb
        pixels = torch.from_numpy(np.array(image)).to(device).permute(2, 0, 1)[None]
        scores, masks = [], []
        with torch.inference_mode(), autocast(device, dtype):
            for text in texts:
                inputs = normalise_pixels(pixels, side, processor["image_mean"], processor["image_std"])
                result = model(pixel_values=inputs, **text)
                scores.append(
                    (result.pred_logits.float().sigmoid() * result.presence_logits.float().sigmoid())[0]
                )
                masks.append(result.pred_masks[0])
            every = torch.cat(scores)
            best = every.argsort(descending=True, stable=True)[:instances]
            low = torch.cat(masks)[best].float().sigmoid()[None]
            size = (image.height, image.width)
            probs = torch.nn.functional.interpolate(low, size, mode="bilinear", align_corners=False)[0]
            full = probs > adapter.mask_threshold
        host = full.cpu().numpy()
        out.append(
            ([float(s) for s in every[best].cpu()], [mask_to_coco(m) if m.any() else None for m in host])
        )
    return out


def _compare(batched: Sequence[Detections], loop: Found, min_iou: float) -> tuple[int, int, float]:
    """Masks equal to the loop's, masks compared, the worst IoU; exits before any ratio is printed
    when a score differs or a mask's IoU is below ``min_iou``."""
    equal = compared = 0
    worst = 1.0
    for image, (found, (scores, masks)) in enumerate(zip(batched, loop, strict=True)):
        if not np.allclose(np.sort(found.scores), np.sort(scores), rtol=1e-3, atol=1e-4):
            raise SystemExit(f"image {image}: batched scores differ from the loop's")
        order = np.argsort(-np.asarray(scores), kind="stable")
        for a, b in zip(found.masks, [masks[i] for i in order], strict=True):
            compared += 1
            if a == b:
                equal += 1
                continue
            x, y = (coco_to_mask(m) if m is not None else None for m in (a, b))
            worst = min(worst, 0.0 if x is None or y is None else (x & y).sum() / max(1, (x | y).sum()))
    if worst < min_iou:
        raise SystemExit(
            f"batched masks differ from the loop's: {equal}/{compared} equal, worst IoU {worst:.5f}"
        )
    return equal, compared, worst


def main() -> None:
    flags = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    flags.add_argument("--images", type=int, default=128)
    flags.add_argument("--width", type=int, default=1920)
    flags.add_argument("--height", type=int, default=1080)
    flags.add_argument("--prompts", type=int, default=10, help=f"at most {len(PHRASES)}")
    flags.add_argument("--instances", type=int, default=10, help="regions per image")
    flags.add_argument("--batch-sizes", default="4,8,16")
    flags.add_argument("--dtype", default="bfloat16")
    flags.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    flags.add_argument("--tiny", action="store_true", help="tiny models (the CPU smoke run in the tests)")
    flags.add_argument("--min-iou", type=float, default=0.99, help="the least IoU of a mask and the loop's")
    args = flags.parse_args()
    sizes = sorted({int(s) for s in args.batch_sizes.split(",")})
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none"
    machine = platform.processor() or platform.machine()
    print(
        f"machine: {machine}, GPU {gpu}, python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"transformers {version('transformers')}"
    )
    kind = "tiny" if args.tiny else "full-size"
    print(
        f"{args.images} JPEGs {args.width}x{args.height}, {args.prompts} prompts, {args.instances} regions "
        f"each, {args.dtype}, {kind} random models, device {args.device}"
    )
    jpegs = _jpegs(args.images, args.width, args.height)
    phrases = PHRASES[: args.prompts]
    common = {"max_detections": args.instances, "dtype": args.dtype, "device": args.device}
    with TemporaryDirectory() as tmp:
        checkpoint = str(save_sam3(Path(tmp) / "sam3", full=not args.tiny))
        options: dict[str, Any] = {
            "checkpoint": checkpoint,
            "classes": phrases,
            "threshold": 0.0,
            "merge_iou": 1.01,
            **common,
        }
        reference: Sam3 = create_model("sam3", **options)
        loop = partial(_loop, reference, instances=args.instances)
        loop(_items(jpegs[:1]))
        loop_found, looped, loop_peak = _timed(partial(loop, _items(jpegs)), args.device)
        rows = []
        for size in sizes:
            adapter: Sam3 = create_model("sam3", **options, batch_size=size)
            _batched(adapter, _items(jpegs[:size]), size)
            results, seconds, peak = _timed(partial(_batched, adapter, _items(jpegs), size), args.device)
            equal, compared, iou = _compare(results, loop_found, args.min_iou)
            adapter.timer = StageTimer()
            adapter.predict(_items(jpegs))
            rows.append((size, args.images / seconds, peak, adapter.timer.seconds, equal, compared, iou))
        detector = save_grounding_dino(Path(tmp) / "gd", full=not args.tiny)
        segmenter = save_sam2(Path(tmp) / "sam2", full=not args.tiny)
        gsam2 = create_model(
            "grounded-sam2",
            classes=phrases,
            detector=str(detector),
            segmenter=str(segmenter),
            box_threshold=0.0,
            text_threshold=0.0,
            mask_score_threshold=0.0,
            **common,
        )
        default = int(getattr(gsam2, "batch_size", 8))
        _batched(gsam2, _items(jpegs[:default]), default)
        _, gsam2_seconds, gsam2_peak = _timed(partial(_batched, gsam2, _items(jpegs), default), args.device)

    per_image = 1000 / args.images
    print(
        "\nsam3 batch  images/s  peak memory  masks equal to the loop's (worst IoU)  |  ms/image: "
        + ", ".join(STAGES)
        + " (stages synchronised)"
    )
    for size, rate, peak, stages, equal, compared, iou in rows:
        times = "  ".join(f"{stages.get(name, 0.0) * per_image:7.2f}" for name in STAGES)
        print(f"{size:10d}  {rate:8.2f}  {_gib(peak):>11}  {equal:5d}/{compared:<5d} ({iou:.6f})  |  {times}")
    loop_rate, gsam2_rate = args.images / looped, args.images / gsam2_seconds
    print(f"loop        {loop_rate:8.2f}  {_gib(loop_peak):>11}")
    print(
        f"grounded-sam2 (batch {default}) {gsam2_rate:8.2f} images/s, {_gib(gsam2_peak)} (another model: "
        "speed only)"
    )
    best = max(rows, key=lambda row: row[1])
    print(
        f"best sam3 batch {best[0]}: {best[1]:.2f} images/s, {best[1] / loop_rate:.1f}x the loop, "
        f"{best[1] / gsam2_rate:.2f}x grounded-sam2"
    )
    print(f"ratio:   {best[1] / loop_rate:.1f}x")


if __name__ == "__main__":
    main()
