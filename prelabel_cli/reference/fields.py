"""A pydantic field as the reference shows it: its type, default and limits in words."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from prelabel_cli.reference.markdown import code

__all__ = ["field_default", "field_limits", "field_type", "shown_value"]


def field_type(annotation: Any) -> str:
    """``int | None`` -> "integer or empty", ``list[str]`` -> "list of text", ..."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        shown = " or ".join(field_type(a) for a in kept)
        return f"{shown} or empty" if len(kept) < len(args) else shown
    if origin is Literal:
        return " \\| ".join(code(str(a)) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {field_type(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {field_type(args[0])} to {field_type(args[1])}" if args else "mapping"
    names = {str: "text", int: "integer", float: "number", bool: "true/false", Path: "path"}
    if annotation is Any:
        return "any value"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def field_default(info: FieldInfo) -> str:
    """The default as text (a path under the home folder with ``~``); "required" when none."""
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None or value in ({}, []):
        return ""
    return shown_value(value)


def shown_value(value: Any) -> str:
    """A default as code, the same on every machine: a path in the home folder starts with ``~``."""
    if isinstance(value, Path) and value.is_relative_to(Path.home()):
        value = "~/" + value.relative_to(Path.home()).as_posix()
    if isinstance(value, bool):
        value = str(value).lower()
    return code(str(value))


def field_limits(info: FieldInfo) -> str:
    """The field's bounds, e.g. ">= 1, <= 10000"."""
    limits = []
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            limits.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            limits.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            limits.append(f"<= {item.le}")
        elif isinstance(item, annotated_types.Lt):
            limits.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.MinLen):
            limits.append(f"at least {item.min_length} long")
    return ", ".join(limits)
