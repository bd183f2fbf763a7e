"""The flow reference: every flow, its deployment entrypoint and its parameters."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

from prefect import Flow
from pydantic import BaseModel

from prelabel_cli.reference.fields import field_default, field_limits, field_type
from prelabel_cli.reference.markdown import GENERATED, code, table

__all__ = ["flows_page", "parameter_models"]


# The flows users start first; the others (shards, helpers) follow by module name.
_FIRST = ("preannotate", "infer", "post_predictions", "pull_annotations", "quality", "ingest", "export")


def _order(name: str) -> tuple[int, str]:
    return (_FIRST.index(name) if name in _FIRST else len(_FIRST), name)


def _flows() -> Iterator[tuple[str, Flow[..., object]]]:
    """(module name, flow) for each flow defined in the ``flows`` package."""
    import flows

    for module in sorted(pkgutil.iter_modules(flows.__path__), key=lambda m: _order(m.name)):
        loaded = importlib.import_module(f"flows.{module.name}")
        for value in vars(loaded).values():
            if isinstance(value, Flow) and value.fn.__module__ == loaded.__name__:
                yield module.name, value


def parameter_models(flow: Flow[..., object]) -> list[type[BaseModel]]:
    """The pydantic models among ``flow``'s parameters (a flow takes one: its parameters)."""
    hints = inspect.signature(flow.fn, eval_str=True).parameters.values()
    return [
        p.annotation for p in hints if inspect.isclass(p.annotation) and issubclass(p.annotation, BaseModel)
    ]


def _section(module: str, flow: Flow[..., object]) -> str:
    parts = [
        f"## {flow.name}",
        inspect.cleandoc(flow.fn.__doc__ or ""),
        f"Entrypoint: {code(f'flows/{module}.py:{flow.fn.__name__}')}",
    ]
    for model in parameter_models(flow):
        name = next(iter(inspect.signature(flow.fn).parameters))
        parts.append(
            f"Parameters ({code(name)}, {code(model.__name__)}): {inspect.cleandoc(model.__doc__ or '')}"
        )
        rows = [
            [
                code(field),
                field_type(info.annotation),
                field_default(info),
                field_limits(info),
                info.description or "",
            ]
            for field, info in model.model_fields.items()
        ]
        parts.append(table(["parameter", "type", "default", "limits", "what it does"], rows))
    return "\n\n".join(p for p in parts if p) + "\n"


def flows_page() -> str:
    """Every flow and its parameters, as the Prefect UI's run form shows them."""
    intro = (
        "# Flows and their parameters\n\n" + GENERATED + "\nEach flow takes its parameters as one "
        "pydantic model; the Prefect UI builds a deployment's run form from it and refuses invalid "
        "values when the run is created. A parameter whose default is empty and whose text names a "
        "`PRELABEL_*` variable takes that [setting](settings.md). Secrets are never parameters.\n"
    )
    return intro + "\n" + "\n".join(_section(module, flow) for module, flow in _flows())
