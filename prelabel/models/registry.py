"""Model names -> adapter classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from prelabel.errors import SettingsError
from prelabel.models.base import ModelAdapter

__all__ = ["adapter_class", "available_models", "create_model", "register"]

_REGISTRY: dict[str, type[ModelAdapter]] = {}
Adapter = TypeVar("Adapter", bound=type[ModelAdapter])


def register(name: str) -> Callable[[Adapter], Adapter]:
    """Class decorator: make an adapter available as ``--model name``."""

    def add(cls: Adapter) -> Adapter:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def available_models() -> dict[str, tuple[str, ...]]:
    """Registered model names and the task types each serves."""
    return {name: cls.task_types for name, cls in sorted(_REGISTRY.items())}


def adapter_class(name: str) -> type[ModelAdapter]:
    """The adapter class registered as ``name``; unknown names list the known ones."""
    if name not in _REGISTRY:
        raise SettingsError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(name: str, **options: Any) -> ModelAdapter:
    """An adapter by name with its options."""
    cls = adapter_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise SettingsError(f"model {name!r}: {exc}") from exc
