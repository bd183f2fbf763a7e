"""docker/compose.yaml as the tests read it: the images the stack builds itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["COMPOSE", "built_images", "load_compose"]

COMPOSE = Path(__file__).parents[2] / "docker" / "compose.yaml"


def load_compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def built_images() -> dict[str, str]:
    """Image tag -> Dockerfile (relative to the repository root) of each service that builds one."""
    return {
        service["image"]: service["build"]["dockerfile"]
        for service in load_compose()["services"].values()
        if "build" in service
    }
