"""Grounding DINO -> SAM 2: prelabel's batched adapter against a one-image-at-a-time loop.

Question: how many images per second does ``--model grounded-sam2`` label on one GPU from JPEG
bytes to COCO RLE, where does the time go, and how much does batching buy over the loop of
the Grounded-SAM-2 demo? Goals on one H100: >= 30 images/s, >= 6x the loop, peak GPU memory
<= 16 GiB at the default batch size, mask encoding < 5% of the time.
Method: random-weight checkpoints of the real architectures (transformers' default configs:
Grounding DINO tiny = Swin-T + BERT-base, SAM 2.1 Hiera tiny; speed does not depend on the
weights), ``--images`` JPEGs, a 3-class prompt, thresholds at 0 with ``max_detections`` =
``--boxes`` so every image has exactly that many boxes and masks. Both paths start from the
JPEG bytes and end with COCO RLE masks on the host.
- The loop does per image what the demo does: decode, resize and normalise, the detector, the
  processor's post-processing, the top boxes (clipped to the image), SAM 2 on that one image,
  every mask upsampled at once, thresholded, copied to the host, encoded. It resizes on the
  device as the adapter does, so both paths see the same pixels; ``--demo-pixels`` uses the
  processor's CPU resize as the demo does (slower; its uint8 rounding moves random-weight
  boxes, so lower ``--min-iou``).
- prelabel, at the adapter's default batch size and each of ``--batch-sizes``: batches go
  through ``prelabel.predict.stages`` as in the flows (the next batch decoded while the model works),
  timed end to end; then once more with a ``StageTimer`` (CUDA synchronised at each stage's
  ends, so the stages add up to more than the overlapped run) for the time per stage.
Before any ratio is printed, every batched run's masks are checked against the loop's: the
same count per image, each mask equal or at IoU >= ``--min-iou`` (0.999: measured on the CPU
at 1080p, even in float32 a few masks differ by one pixel of a million, from the different
order of floating-point sums in a batch); equal counts and the worst IoU are printed.
One warm-up batch per path; peak GPU memory per run (``n/a`` on the CPU). The projection to
100k images assumes shards scale linearly over ``--gpus`` (``infer-shard``: nothing shared
but the cache).
Grounding DINO's deformable attention is the fused Triton kernel on CUDA (the adapter's
default, ``prelabel.predict.models.deformable``) in both paths; ``--no-fused-attention`` runs
transformers' PyTorch path in both, for a second run to compare with. The adapter's other
speed settings have flags too (``--attn-implementation``, ``--channels-last``,
``--block-queries``); ``benchmarks/gpu_variants.py`` compares them all in one run.
``--json PATH`` writes every printed figure (``scripts/gpu-check`` collects them).
Command (GPU): ``python -m benchmarks.grounded_sam2``; the tests run it with ``--tiny``.
"""

from __future__ import annotations

import argparse
import inspect
import io
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from importlib.metadata import version
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from prelabel.convert.masks import CocoRle, coco_to_mask, mask_to_coco
from prelabel.core.images import read_image_info
from prelabel.predict.batches import chunks
from prelabel.predict.models import ImageItem, create_model
from prelabel.predict.models.base import decode_batch
from prelabel.predict.models.deformable import triton_available
from prelabel.predict.models.deformable_tile import BLOCK_QUERIES
from prelabel.predict.models.grounded_sam2 import (
    ATTENTION_IMPLEMENTATIONS,
    SAM_MEAN,
    SAM_STD,
    GroundedSam2,
    build_prompt,
    detector_pixels,
    normalise_pixels,
)
from prelabel.predict.models.runtime import StageTimer, autocast
from prelabel.predict.stages import overlapped
from prelabel.records import Detections
from tests.support.random_models import save_grounding_dino, save_sam2

CLASSES = ["car", "person", "traffic light"]
STAGES = ["decode", "copies", "detector", "encoder", "decoder", "mask encode"]
Masks = list[list[CocoRle | None]]
T = TypeVar("T")


def _jpegs(count: int, width: int, height: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        pixels = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        blocks = np.kron(pixels, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
        buffer = io.BytesIO()
        Image.fromarray(blocks).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _items(jpegs: Sequence[bytes]) -> list[ImageItem]:
    """Fresh items (nothing decoded yet) for one timed run."""
    return [ImageItem(f"{i}.jpg", data, read_image_info(data, f"{i}.jpg")) for i, data in enumerate(jpegs)]


def _loop(adapter: Any, items: Sequence[ImageItem], boxes: int, demo_pixels: bool) -> Masks:
    """One image at a time, as the Grounded-SAM-2 demo does; the masks per image.

    ``demo_pixels``: the processor resizes and normalises on the CPU, as in the demo; else the
    loop resizes on the device as the adapter does (the same pixels, so the same masks)."""
    detector, processor, segmenter = adapter._load()
    device, dtype = adapter.device, adapter.dtype
    prompt = build_prompt(CLASSES)[0]
    side = int(segmenter.config.prompt_encoder_config.image_size)
    out: Masks = []
    for item in items:
        image = item.load().rgb
        pixels = torch.from_numpy(np.array(image)).to(device).permute(2, 0, 1)[None]
        if demo_pixels:
            inputs = processor(images=image, text=prompt, return_tensors="pt").to(device)
        else:
            inputs = processor(text=prompt, return_tensors="pt").to(device)
            inputs["pixel_values"] = detector_pixels(pixels, processor.image_processor)
        with torch.inference_mode(), autocast(device, dtype):
            outputs = detector(**inputs)
            found = processor.post_process_grounded_object_detection(
                outputs,
                inputs["input_ids"],
                threshold=0.0,
                text_threshold=0.0,
                target_sizes=[(image.height, image.width)],
            )[0]
            top = found["boxes"][found["scores"].float().argsort(descending=True)[:boxes]].float()
            edges = torch.tensor([image.width, image.height] * 2, device=device)
            top = torch.minimum(top.clamp(min=0), edges)  # inside the image, as the adapter keeps them
            scale = torch.tensor([side / image.width, side / image.height] * 2, device=device)
            result = segmenter(
                pixel_values=normalise_pixels(pixels, (side, side), SAM_MEAN, SAM_STD),
                input_boxes=(top * scale)[None],
                multimask_output=False,
            )
            logits = result.pred_masks[0, :, 0][None].float()
            size = (image.height, image.width)
            masks = torch.nn.functional.interpolate(logits, size, mode="bilinear", align_corners=False)[0] > 0
            present = (result.object_score_logits[0, :, 0].float() > 0).tolist()  # SAM 2: no object there
        host = masks.cpu().numpy()
        out.append([mask_to_coco(m) if p and m.any() else None for m, p in zip(host, present, strict=True)])
    return out


def _batched(adapter: GroundedSam2, items: Sequence[ImageItem], batch_size: int) -> list[Detections]:
    """As the flows run it: each batch decoded in a thread while the model works on the one before."""
    results: list[Detections] = []
    for found in overlapped(chunks(items, batch_size), _decoded, adapter.predict, lambda found: found):
        results += [f for f in found if isinstance(f, Detections)]
    return results


def _decoded(batch: Sequence[ImageItem]) -> Sequence[ImageItem]:
    decode_batch(batch)
    return batch


def _timed(run: Callable[[], T], device: str) -> tuple[T, float, float | None]:
    """What ``run`` returns, its seconds and its peak device memory in GiB (None on the CPU)."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    value = run()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return value, seconds, torch.cuda.max_memory_allocated() / 2**30 if cuda else None


def _gib(peak: float | None) -> str:
    return "n/a" if peak is None else f"{peak:.2f} GiB"


def _compare(batched: Sequence[Detections], loop: Masks, min_iou: float) -> tuple[int, int, float]:
    """Masks equal to the loop's, masks compared, the worst IoU (a mask against none: 0); exits
    before any ratio is printed when a mask's IoU is below ``min_iou``."""
    equal = compared = 0
    worst = 1.0
    for image, (found, masks) in enumerate(zip(batched, loop, strict=True)):
        if len(found.masks) != len(masks):
            raise SystemExit(f"image {image}: {len(found.masks)} batched masks, {len(masks)} in the loop")
        for a, b in zip(found.masks, masks, strict=True):
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


def parser(description: str) -> argparse.ArgumentParser:
    """The flags this benchmark and ``benchmarks.gpu_variants`` share."""
    default = int(inspect.signature(GroundedSam2).parameters["batch_size"].default)
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--batch-sizes", default="16,32", help=f"besides the adapter's default ({default})")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny models (the CPU smoke run in the tests)")
    parser.add_argument(
        "--no-fused-attention",
        action="store_true",
        help="transformers' PyTorch deformable attention, not the Triton kernel",
    )
    parser.add_argument(
        "--attn-implementation",
        choices=ATTENTION_IMPLEMENTATIONS,
        help="transformers' attention code (default: transformers' choice)",
    )
    parser.add_argument("--channels-last", action="store_true", help="channels-last models and pixels")
    parser.add_argument(
        "--block-queries",
        type=int,
        default=BLOCK_QUERIES,
        help="queries per program of the fused kernel (power of two, 8-256)",
    )
    parser.add_argument("--json", type=Path, help="also write every printed figure to this JSON file")
    return parser


def header(args: argparse.Namespace) -> dict[str, Any]:
    """The machine, versions and settings: printed, and the head of the JSON report."""
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none"
    triton = version("triton") if triton_available() else "none"
    versions = (
        f"python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"transformers {version('transformers')}, triton {triton}"
    )
    print(f"machine: {platform.processor() or platform.machine()}, GPU {gpu}, {versions}")
    fused = args.device.startswith("cuda") and triton_available() and not args.no_fused_attention
    print(
        f"{args.images} JPEGs {args.width}x{args.height}, {args.boxes} boxes each, {args.dtype}, "
        f"{'tiny' if args.tiny else 'full-size'} models, device {args.device}, deformable attention: "
        f"{'fused Triton kernel' if fused else 'PyTorch'}"
    )
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    return {
        "machine": platform.processor() or platform.machine(),
        "gpu": gpu,
        "versions": versions,
        "fused_kernel": fused,
        "settings": settings,
    }


def model_options(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The adapter's options for the random-weight checkpoints written under ``tmp`` (thresholds
    at 0 and ``max_detections`` = ``--boxes``: every image has exactly that many)."""
    return {
        "classes": CLASSES,
        "detector": str(save_grounding_dino(tmp / "gd", full=not args.tiny)),
        "segmenter": str(save_sam2(tmp / "sam2", full=not args.tiny)),
        "box_threshold": 0.0,
        "text_threshold": 0.0,
        "mask_score_threshold": 0.0,
        "max_detections": args.boxes,
        "dtype": args.dtype,
        "device": args.device,
        "fused_attention": not args.no_fused_attention,
        "attn_implementation": args.attn_implementation,
        "channels_last": args.channels_last,
        "block_queries": args.block_queries,
    }


def write_json(path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    default = int(inspect.signature(GroundedSam2).parameters["batch_size"].default)
    flags = parser((__doc__ or "").split("\n")[0])
    flags.add_argument("--gpus", type=int, default=8, help="for the 100k-image projection")
    flags.add_argument(
        "--demo-pixels",
        action="store_true",
        help="the loop resizes on the CPU, as the demo (lower --min-iou)",
    )
    flags.add_argument("--min-iou", type=float, default=0.999, help="the least IoU of a mask and the loop's")
    args = flags.parse_args()
    sizes = sorted({default, *(int(s) for s in args.batch_sizes.split(","))})
    report = header(args)
    jpegs = _jpegs(args.images, args.width, args.height)
    with TemporaryDirectory() as tmp:
        options = model_options(Path(tmp), args)
        reference: GroundedSam2 = create_model("grounded-sam2", **options)  # type: ignore[assignment]
        loop = partial(_loop, reference, boxes=args.boxes, demo_pixels=args.demo_pixels)
        loop(_items(jpegs[:1]))
        loop_masks, looped, loop_peak = _timed(partial(loop, _items(jpegs)), args.device)
        rows = []
        for size in sizes:
            adapter: GroundedSam2 = create_model("grounded-sam2", **options, batch_size=size)  # type: ignore[assignment]
            _batched(adapter, _items(jpegs[:size]), size)
            results, seconds, peak = _timed(partial(_batched, adapter, _items(jpegs), size), args.device)
            equal, compared, iou = _compare(results, loop_masks, args.min_iou)
            adapter.timer = StageTimer()
            adapter.predict(_items(jpegs))  # stage by stage: synchronised, not overlapped
            rows.append((size, args.images / seconds, peak, adapter.timer.seconds, equal, compared, iou))

    per_image = 1000 / args.images
    print(
        "\nbatch  images/s  peak memory  masks equal to the loop's (worst IoU)  |  ms/image: "
        + ", ".join(STAGES)
        + ", sum (stages synchronised)"
    )
    report["batches"] = []
    for size, rate, peak, stages, equal, compared, iou in rows:
        times = [stages.get(name, 0.0) * per_image for name in STAGES]
        tag = " (default)" if size == default else ""
        print(
            f"{size:5d}  {rate:8.2f}  {_gib(peak):>11}  {equal:5d}/{compared:<5d} ({iou:.6f})  |  "
            + "  ".join(f"{t:7.2f}" for t in times)
            + f"  {sum(times):7.2f}{tag}"
        )
        report["batches"].append(
            {
                "batch": size,
                "default": size == default,
                "images_per_s": rate,
                "peak_gib": peak,
                "masks_equal": equal,
                "masks_compared": compared,
                "worst_iou": iou,
                "ms_per_image": dict(zip(STAGES, times, strict=True)),
                "ms_per_image_sum": sum(times),
            }
        )
    loop_rate = args.images / looped
    print(f"loop   {loop_rate:8.2f}  {_gib(loop_peak):>11}")
    best = max(rows, key=lambda row: row[1])
    at_default = rows[sizes.index(default)][1] / loop_rate
    print(
        f"best batch {best[0]}: {best[1]:.2f} images/s, {best[1] / loop_rate:.1f}x the loop; "
        f"at the default batch {default}: {at_default:.1f}x"
    )
    hours = 100_000 / best[1] / 3600
    print(
        f"100k images: {hours:.1f} h on 1 {'GPU' if report['gpu'] != 'none' else 'CPU'}, "
        f"{hours / args.gpus:.2f} h on {args.gpus} (linear in shards)"
    )
    print(f"ratio:   {best[1] / loop_rate:.1f}x")
    report |= {
        "loop": {"images_per_s": loop_rate, "peak_gib": loop_peak, "seconds": looped},
        "best": {"batch": best[0], "images_per_s": best[1], "ratio_to_loop": best[1] / loop_rate},
        "default_batch": {"batch": default, "ratio_to_loop": at_default},
        "hours_100k": {"1": hours, str(args.gpus): hours / args.gpus},
    }
    write_json(args.json, report)


if __name__ == "__main__":
    main()
