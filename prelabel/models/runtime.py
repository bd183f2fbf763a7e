"""What the torch-based adapters share: importing torch lazily, the device, autocast."""

from __future__ import annotations

import contextlib
from typing import Any

from prelabel.errors import SettingsError

__all__ = ["autocast", "load_pretrained", "require_torch", "select_device"]


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


def load_pretrained(loader: Any, checkpoint: str, revision: str | None) -> Any:
    """``loader.from_pretrained`` (a hub id or a local folder), failing with the checkpoint's name."""
    try:
        return loader.from_pretrained(checkpoint, revision=revision)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot load {checkpoint!r}: {exc}") from exc
