"""Model names -> adapter classes; ``a+b`` names build a chain of adapters."""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_type_hints

from prelabel.core.errors import SettingsError
from prelabel.predict.models.base import ModelAdapter
from prelabel.predict.models.chain import CHAIN, ModelChain

__all__ = [
    "adapter_class",
    "available_models",
    "create_model",
    "model_option_names",
    "model_parts",
    "option_names",
    "register",
]

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


def model_parts(name: str) -> list[tuple[str, type[ModelAdapter]]]:
    """Each model ``name`` runs, with the prefix its options take: ``""`` for a single model,
    ``"vitpose."`` for the vitpose part of ``detr+vitpose``. A chain starts with a detector
    and goes on with models that refine detections."""
    names = [part.strip() for part in name.split(CHAIN)]
    if len(names) == 1:
        cls = adapter_class(name)
        if not cls.detects:
            raise SettingsError(
                f"model {name!r} refines another model's detections: chain it after a detector, "
                f"e.g. --model detr{CHAIN}{name}"
            )
        return [("", cls)]
    if not all(names) or len(set(names)) != len(names):
        raise SettingsError(f"model chain {name!r}: name each model once, joined by {CHAIN!r}")
    classes = [adapter_class(part) for part in names]
    if not classes[0].detects:
        raise SettingsError(f"model chain {name!r}: {names[0]} cannot start a chain; put a detector first")
    late = [part for part, cls in zip(names[1:], classes[1:], strict=True) if not cls.refines]
    if late:
        refiners = ", ".join(sorted(n for n, cls in _REGISTRY.items() if cls.refines))
        raise SettingsError(
            f"model chain {name!r}: {late[0]} cannot follow another model; only the first model "
            f"detects, the others refine its detections ({refiners})"
        )
    return [(f"{part}.", cls) for part, cls in zip(names, classes, strict=True)]


def option_names(name: str) -> list[str]:
    """The options ``create_model(name, ...)`` takes (a chain's with their part's prefix)."""
    return [prefix + option for prefix, cls in model_parts(name) for option in model_option_names(cls)]


def create_model(name: str, **options: Any) -> ModelAdapter:
    """An adapter (or a chain of them) by name with its options; an unknown option names the
    ones it takes. In a chain each option names its part: ``vitpose.threshold``.

    Adapters load their weights on first use, so this is cheap: the command line calls it
    to check a model and its options before any work starts.
    """
    parts = model_parts(name)
    if len(parts) == 1:
        return _create(name, parts[0][1], options)
    given: dict[str, dict[str, Any]] = {prefix: {} for prefix, _ in parts}
    for key, value in options.items():
        prefix, dot, option = key.partition(".")
        if not dot or f"{prefix}." not in given:
            names = ", ".join(p.rstrip(".") for p in given)
            raise SettingsError(
                f"model option {key!r}: in the chain {name!r} each option starts with the name of "
                f"its model ({names}), e.g. {parts[-1][1].name}.threshold=0.3"
            )
        given[f"{prefix}."][option] = value
    return ModelChain([_create(cls.name, cls, given[prefix]) for prefix, cls in parts])


def _create(name: str, cls: type[ModelAdapter], given: Mapping[str, Any]) -> ModelAdapter:
    options = _fold_keyed(name, cls, given)
    known = model_option_names(cls)
    unknown = sorted(set(options) - set(known))
    if unknown:
        listed = [*known, *(f"{family}.<name>" for family in cls.keyed_options)]
        raise SettingsError(
            f"model {name!r} has no option {unknown[0]!r}; its options: {', '.join(listed) or 'none'}"
        )
    for option, value in options.items():
        _check_type(name, cls, option, value)
    try:
        return cls(**options)
    except TypeError as exc:
        raise SettingsError(f"model {name!r}: {exc}") from exc


def _fold_keyed(name: str, cls: type[ModelAdapter], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with each ``family.key=value`` (``threshold.person=0.5``) moved into the mapping
    option its family names (``thresholds={"person": 0.5}``); every value of that mapping is
    checked as the family's own option would be."""
    folded = dict(options)
    for family, target in cls.keyed_options.items():
        prefix = f"{family}."
        keyed = {k.removeprefix(prefix): folded.pop(k) for k in list(folded) if k.startswith(prefix)}
        if not keyed and folded.get(target) is None:
            continue
        earlier = folded.get(target) or {}
        if not isinstance(earlier, Mapping):
            raise SettingsError(f"model {name!r}: option {target} must be a mapping, got {earlier!r}")
        folded[target] = {**earlier, **keyed}
        for key, value in folded[target].items():
            _check_type(name, cls, family, value, shown=f"{prefix}{key}")
    return folded


def _check_type(name: str, cls: type[ModelAdapter], option: str, value: Any, shown: str = "") -> None:
    """A number option given something else is a clear error now, not a TypeError (or a
    threshold of NaN keeping everything) deep in a run. Command-line values arrive as JSON
    where they parse, else as strings: ``threshold=high`` is the string ``'high'``."""
    expected = _option_types(cls).get(option)
    option = shown or option
    if isinstance(expected, types.UnionType) and value is None and type(None) in expected.__args__:
        return
    if isinstance(expected, types.UnionType):
        given = [t for t in expected.__args__ if t is not type(None)]
        expected = given[0] if len(given) == 1 else None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if expected is float and not (number and math.isfinite(value)):
        raise SettingsError(f"model {name!r}: option {option} must be a finite number, got {value!r}")
    if expected is int and not (number and isinstance(value, int)):
        raise SettingsError(f"model {name!r}: option {option} must be a whole number, got {value!r}")
    if expected is bool and not isinstance(value, bool):
        raise SettingsError(f"model {name!r}: option {option} must be true or false, got {value!r}")


def _option_types(cls: type[ModelAdapter]) -> dict[str, Any]:
    """The annotated types of an adapter class's options (through ``**options`` to its base)."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is not None and klass is not object:
            hints.update(get_type_hints(init))
    return hints


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
