"""prelabel as Label Studio's ML backend: the protocol, the predictor within a budget, clicks and
boxes, hand-overs to flow runs, and the app factory (``create_app``). See
``docs/label-studio-backend.md``; ``prelabel serve`` runs it.

The names load on first use: the command line reads the settings (``prelabel.serve.settings``)
to build its help, and must not pull in the app and the image libraries behind it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prelabel.serve.app import create_app
    from prelabel.serve.handoff import Debouncer, Handoff, HandoffRegistry
    from prelabel.serve.settings import ServeSettings, load_serve_settings

__all__ = ["Debouncer", "Handoff", "HandoffRegistry", "ServeSettings", "create_app", "load_serve_settings"]

_MODULE_OF = {
    "create_app": "prelabel.serve.app",
    "Debouncer": "prelabel.serve.handoff",
    "Handoff": "prelabel.serve.handoff",
    "HandoffRegistry": "prelabel.serve.handoff",
    "ServeSettings": "prelabel.serve.settings",
    "load_serve_settings": "prelabel.serve.settings",
}

if not TYPE_CHECKING:  # for mypy, the imports above declare every name

    def __getattr__(name: str) -> object:
        module = _MODULE_OF.get(name)
        if module is None:
            raise AttributeError(f"module 'prelabel.serve' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
