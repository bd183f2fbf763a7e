"""Model names -> adapter classes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from prelabel.errors import SettingsError
from prelabel.models.base import ModelAdapter

__all__ = ["adapter_class", "available_models", "create_model", "model_option_names", "register"]

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
    """An adapter by name with its options; an unknown option names the ones it takes.

    Adapters load their weights on first use, so this is cheap: the command line calls it
    to check a model and its options before any work starts.
    """
    cls = adapter_class(name)
    known = model_option_names(cls)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SettingsError(
            f"model {name!r} has no option {unknown[0]!r}; its options: {', '.join(known) or 'none'}"
        )
    try:
        return cls(**options)
    except TypeError as exc:
        raise SettingsError(f"model {name!r}: {exc}") from exc


def model_option_names(cls: type[ModelAdapter]) -> list[str]:
    """The keyword options an adapter class takes (through ``**options`` to its base, too)."""
    names: list[str] = []
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        names += [p.name for p in params if p.kind not in variadic and p.name not in names]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return names
    return names
