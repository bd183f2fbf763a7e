"""What the torch-based adapters share: importing torch lazily, the device, autocast."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prelabel.core.errors import SettingsError
from prelabel.predict.models.hub import read_locally

__all__ = ["StageTimer", "autocast", "host_to_device", "load_pretrained", "require_torch", "select_device"]


def require_torch(model: str) -> Any:
    """The torch module, or a clear error naming the extra to install."""
    try:
        import torch
        import transformers  # noqa: F401  (every torch adapter loads through it)
    except ImportError as exc:
        raise SettingsError(
            f"the {model} model needs torch and transformers: pip install 'prelabel[models]'"
        ) from exc
    return torch


def select_device(device: str | None) -> str:
    """``device`` or CUDA when present (with TF32 matmuls enabled), else CPU."""
    import torch

    chosen = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if chosen.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return chosen


def autocast(device: str, dtype: str = "bfloat16") -> contextlib.AbstractContextManager[Any]:
    """Mixed precision on CUDA (``dtype`` "float32" turns it off); a no-op on CPU."""
    import torch

    if not device.startswith("cuda") or dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=getattr(torch, dtype))


def load_pretrained(loader: Any, checkpoint: str, revision: str | None, **options: Any) -> Any:
    """``loader.from_pretrained`` (a hub id or a local folder; ``options`` such as
    ``attn_implementation`` passed on), failing with the checkpoint's name. The Hub is asked
    only when it answers (``prelabel.predict.models.hub``): offline, a load fails at once, in one line."""
    local = read_locally(checkpoint, revision)
    try:
        return loader.from_pretrained(checkpoint, revision=revision, local_files_only=local, **options)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot load {checkpoint!r}: {exc}") from exc


def host_to_device(array: Any, device: str) -> Any:
    """A host (numpy) array as a tensor on ``device``: on CUDA staged in pinned memory and copied
    without blocking, so the copy overlaps the work already queued on the device; elsewhere a
    plain copy (none on the CPU)."""
    import torch

    tensor = torch.from_numpy(array)
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


class StageTimer:
    """Seconds per stage of an adapter, summed over its calls (benchmarks set ``adapter.timer``).

    On CUDA each stage synchronises the device at both ends so that its time is its own, which
    also stops host and device overlapping: measure throughput without a timer.
    """

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def stage(self, name: str, device: str) -> Iterator[None]:
        import torch

        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(device)
            self.seconds[name] += time.perf_counter() - start
