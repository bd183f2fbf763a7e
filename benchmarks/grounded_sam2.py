"""Grounding DINO -> SAM 2: prelabel's batched adapter against a one-image-at-a-time loop.

Question: how many images per second does ``--model grounded-sam2`` label on one GPU, and
how much does batching buy over the loop of the Grounded-SAM-2 demo? Goals on one H100:
>= 30 images/s and >= 4x the loop.
Method: random-weight checkpoints of the real architectures (transformers' default
configs: Grounding DINO tiny = Swin-T + BERT-base, SAM 2.1 Hiera tiny; speed does not
depend on the weights), ``--images`` 1080p images decoded before timing (both paths get the
same pixels), a 3-class prompt, thresholds at 0 with ``max_detections`` = ``--boxes`` so
every image has exactly that many boxes and masks, bf16 autocast. Both paths end with COCO
RLE masks on the CPU. The loop does per image what the demo does: the transformers
processor (CPU resize and normalise), the detector, the processor's post-processing, the
top boxes, SAM 2 on that one image, every mask upsampled at once, thresholded, encoded.
One warm-up image per path; peak GPU memory per path.
Command (GPU): ``python benchmarks/grounded_sam2.py``; the tests run it with ``--tiny``.
"""

from __future__ import annotations

import argparse
import io
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from prelabel.convert.masks import mask_to_coco
from prelabel.images import read_image_info
from prelabel.models import ImageItem, create_model
from prelabel.models.grounded_sam2 import SAM_MEAN, SAM_STD, build_prompt, normalise_pixels
from prelabel.models.runtime import autocast
from tests.support.random_models import save_grounding_dino, save_sam2

CLASSES = ["car", "person", "traffic light"]


def _images(count: int, width: int, height: int) -> list[ImageItem]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(count):
        pixels = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(np.kron(pixels, np.ones((8, 8, 1), dtype=np.uint8))).save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        item = ImageItem(uri=f"{i}.jpg", data=data, info=read_image_info(data, f"{i}.jpg"))
        item.load()  # decoded before timing: both paths get the same pixels
        items.append(item)
    return items


def _loop(adapter: Any, items: Sequence[ImageItem], boxes: int) -> None:
    """One image at a time, as the Grounded-SAM-2 demo does."""
    detector, processor, segmenter = adapter._load()
    device, dtype = adapter.device, adapter.dtype
    prompt = build_prompt(CLASSES)[0]
    side = int(segmenter.config.prompt_encoder_config.image_size)
    for item in items:
        image = item.load().rgb
        inputs = processor(images=image, text=prompt, return_tensors="pt").to(device)
        with torch.inference_mode(), autocast(device, dtype):
            outputs = detector(**inputs)
            found = processor.post_process_grounded_object_detection(
                outputs, inputs["input_ids"], threshold=0.0, text_threshold=0.0,
                target_sizes=[(image.height, image.width)],
            )[0]  # fmt: skip
            top = found["boxes"][found["scores"].float().argsort(descending=True)[:boxes]].float()
            pixels = torch.from_numpy(np.array(image)).to(device).permute(2, 0, 1)[None]
            scale = torch.tensor([side / image.width, side / image.height] * 2, device=device)
            result = segmenter(
                pixel_values=normalise_pixels(pixels, (side, side), SAM_MEAN, SAM_STD),
                input_boxes=(top * scale)[None], multimask_output=False,
            )  # fmt: skip
            logits = result.pred_masks[0, :, 0][None].float()
            size = (image.height, image.width)
            masks = torch.nn.functional.interpolate(logits, size, mode="bilinear", align_corners=False)[0] > 0
        for mask in masks.cpu().numpy():
            mask_to_coco(mask)


def _timed(run: Callable[[], object], device: str) -> tuple[float, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return time.perf_counter() - start, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny models (the CPU smoke run in the tests)")
    args = parser.parse_args()

    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "none"
    print(f"machine: {platform.processor() or platform.machine()}, GPU {gpu}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        detector = save_grounding_dino(Path(tmp) / "gd", full=not args.tiny)
        segmenter = save_sam2(Path(tmp) / "sam2", full=not args.tiny)
        adapter = create_model(
            "grounded-sam2", classes=CLASSES, detector=str(detector), segmenter=str(segmenter),
            box_threshold=0.0, text_threshold=0.0, mask_score_threshold=0.0, max_detections=args.boxes,
            batch_size=args.batch_size, dtype=args.dtype, device=args.device,
        )  # fmt: skip
        items = _images(args.images, args.width, args.height)
        print(f"{args.images} images {args.width}x{args.height}, {args.boxes} boxes each, {args.dtype}, "
              f"batch {args.batch_size}, {'tiny' if args.tiny else 'full-size'} models")  # fmt: skip
        adapter.predict(items[:1])
        _loop(adapter, items[:1], args.boxes)
        results: list[Any] = []
        batched, batched_peak = _timed(lambda: results.extend(adapter.predict(items)), args.device)
        looped, loop_peak = _timed(lambda: _loop(adapter, items, args.boxes), args.device)
    masks = sum(m is not None for r in results for m in r.masks)
    print(f"batched: {args.images / batched:8.2f} images/s, peak GPU memory {batched_peak:.2f} GiB, "
          f"{masks} masks")  # fmt: skip
    print(f"loop:    {args.images / looped:8.2f} images/s, peak GPU memory {loop_peak:.2f} GiB")
    print(f"ratio:   {looped / batched:.1f}x")


if __name__ == "__main__":
    main()
