"""SAM 3 video tracking against the SAM 3 image model on every frame, and memory against video length.

Question: how many 1080p frames per second does ``--model sam3-video`` track with 5 objects,
against ``sam3`` (the image model) run on every frame, and does its memory stay flat from a
1-minute to a 10-minute video? Method: random-weight models of the real architectures
(transformers' default configs; speed does not depend on the weights; ``--tiny`` for the CPU
smoke run), a video of moving rectangles written with PyAV at ``--width`` x ``--height`` and
``--fps``, thresholds 0 and ``max_objects`` = ``--objects`` so that many objects are tracked,
``hotstart_delay`` 15 (the checkpoint's default). The image model sees the same decoded frames
(as PNG bytes) with the same labels, batch 8. Peak GPU memory per run (``n/a`` on the CPU) and,
for both video lengths, the most the session held at once: decoded frames, memories of one
object, frame-keyed entries (what the pruning bounds). Flat: those equal for both lengths (both
past the memory window) and the GPU peaks within 10%.
Command (GPU): ``python -m benchmarks.video_gpu``; the tests run it with ``--tiny``.
"""

from __future__ import annotations

import argparse
import io
import platform
import time
from importlib.metadata import version
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, cast

from PIL import Image

from prelabel.core.images import read_image_info
from prelabel.predict.models import create_model
from prelabel.predict.models.base import ImageItem
from prelabel.predict.models.sam3_video import Sam3Video
from prelabel.video.decode import iter_chunks
from prelabel.video.probe import probe_video
from tests.support.random_models import save_sam3, save_sam3_video
from tests.support.videos import Shape, write_video

LABELS = ["car", "person"]


def _peak(torch: Any, device: str) -> str:
    return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if device == "cuda" else "n/a"


def _held(session: Any) -> tuple[int, int, int]:
    """What the session holds now: decoded frames, the most memories of one object, and the
    frame-keyed entries (none of them may grow with the video once past the memory window)."""
    memories = max(
        (len(o["non_cond_frame_outputs"]) for o in session.output_dict_per_obj.values()), default=0
    )
    keyed = len(session.obj_id_to_tracker_score_frame_wise) + len(session.suppressed_obj_ids)
    return len(session.processed_frames), memories, keyed


def _shapes(count: int, width: int, height: int) -> tuple[Shape, ...]:
    size = (max(width // 10, 4), max(height // 8, 4))
    return tuple(
        Shape((40 * k % 255, 90, 200), size, (width * k / (count + 1), height / 3), (1, 0.5))
        for k in range(1, count + 1)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random models (the CPU smoke run)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--objects", type=int, default=5)
    parser.add_argument("--seconds", type=float, nargs=2, default=[60, 600], help="the two video lengths")
    args = parser.parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"machine: {platform.machine()} {device}, torch {torch.__version__}, transformers "
        f"{version('transformers')}, av {version('av')}"
    )
    with TemporaryDirectory() as scratch:
        root = Path(scratch)
        video_checkpoint = save_sam3_video(root / "sam3-video", full=not args.tiny)
        image_checkpoint = save_sam3(root / "sam3", full=not args.tiny)
        options = {
            "threshold": 0.0,
            "new_object_threshold": 0.0,
            "max_objects": args.objects,
            "hotstart_delay": 2 if args.tiny else 15,
            "device": device,
        }
        model = cast(
            Sam3Video, create_model("sam3-video", checkpoint=str(video_checkpoint), classes=LABELS, **options)
        )
        held = []
        for seconds in args.seconds:
            frames = max(2, round(seconds * args.fps))
            size = (args.width, args.height)
            path = write_video(
                root / f"v{frames}.mp4",
                frames=frames,
                size=size,
                fps=args.fps,
                shapes=_shapes(args.objects, args.width, args.height),
            )
            video = probe_video(path)
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            network, _, _ = model._load()
            session = model.session(video)
            start = time.perf_counter()
            tracked, most = 0, (0, 0, 0)
            for _ in model.outputs(network, session, video):
                now = _held(session)
                tracked += 1
                most = (max(most[0], now[0]), max(most[1], now[1]), max(most[2], now[2]))
            took = time.perf_counter() - start
            held.append((most, torch.cuda.max_memory_allocated() if device == "cuda" else 0))
            print(
                f"sam3-video {seconds:g} s ({frames} frames): {tracked / took:.2f} frames/s, peak "
                f"{_peak(torch, device)}, held at most: {most[0]} frames, {most[1]} memories per object, "
                f"{most[2]} frame-keyed entries"
            )
        image = create_model(
            "sam3",
            checkpoint=str(image_checkpoint),
            classes=LABELS,
            threshold=0.0,
            max_detections=args.objects,
            device=device,
        )
        items = []
        for chunk in iter_chunks(path, 8):
            for n, rgb in enumerate(chunk.rgb):
                buffer = io.BytesIO()
                Image.fromarray(rgb).save(buffer, "PNG")
                data = buffer.getvalue()
                items.append(
                    ImageItem(f"{chunk.start + n}.png", data, read_image_info(data, f"{chunk.start + n}.png"))
                )
            if len(items) >= 64:
                break
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for begin in range(0, len(items), 8):
            image.predict(items[begin : begin + 8])
        per_image = len(items) / (time.perf_counter() - start)
        print(
            f"sam3 on every frame ({len(items)} frames): {per_image:.2f} frames/s, "
            f"peak {_peak(torch, device)}"
        )
        (short, short_peak), (long, long_peak) = held
        flat = short == long and long_peak <= 1.1 * short_peak  # GPU peaks within 10% (0 on a CPU)
        print(f"memory flat: {'yes' if flat else 'no'} (held at most {short} vs {long})")


if __name__ == "__main__":
    main()
