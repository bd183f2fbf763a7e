"""prelabel as Label Studio's ML backend: the protocol, the predictor within a budget, clicks and
boxes, hand-overs to flow runs, and the app factory (``create_app``). See
``docs/label-studio-backend.md``; ``prelabel serve`` runs it."""

from prelabel.serve.app import create_app
from prelabel.serve.handoff import Debouncer, Handoff, HandoffRegistry
from prelabel.serve.settings import ServeSettings, load_serve_settings

__all__ = ["Debouncer", "Handoff", "HandoffRegistry", "ServeSettings", "create_app", "load_serve_settings"]
