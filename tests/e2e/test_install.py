"""What ``scripts/install`` leaves in an environment: one OpenCV, and a command line that starts
without loading any model or image library (the images run the same checks inside them)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys

import pytest

import prelabel
from tests.support import REPO, python_prints

ROOT = REPO

# Libraries that ``prelabel --help`` and ``prelabel version`` must not load: models, images,
# arrays and tables. Their native parts are what breaks in a slim image (OpenCV's libxcb).
HEAVY = frozenset(
    {
        "av",
        "cv2",
        "matplotlib",
        "numpy",
        "onnxruntime",
        "pandas",
        "PIL",
        "pyarrow",
        "pycocotools",
        "rapidocr_onnxruntime",
        "scipy",
        "sklearn",
        "torch",
        "transformers",
        "triton",
    }
)


def cv2_distributions() -> list[str]:
    """The installed distributions that put a ``cv2`` package on the path, by name."""
    return sorted(importlib.metadata.packages_distributions().get("cv2", []))


def test_one_opencv_is_installed_the_headless_one() -> None:
    # opencv-python (pulled by rapidocr-onnxruntime) and the headless build both write cv2/; the
    # last one installed wins, and the full build needs libxcb and libGL, which slim images lack.
    assert cv2_distributions() == ["opencv-python-headless"]
    stand_in = importlib.metadata.distribution("opencv-python")
    assert stand_in.version.endswith("+headless"), stand_in.version  # scripts/opencv-python
    assert not [f for f in stand_in.files or [] if f.parts[0] == "cv2"]


def loaded_modules(*args: str) -> set[str]:
    """Top-level modules that ``prelabel *args`` imports, read from ``python -X importtime``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "from prelabel_cli.main import main; main()"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line.split("|")[-1] for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.strip().split(".")[0] for line in lines[1:]}  # the first line is the header


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),  # every command's options and defaults are built for the help
        ("version",),
    ],
)
def test_help_and_version_load_no_model_or_image_library(args: tuple[str, ...]) -> None:
    loaded = loaded_modules(*args)
    assert "prelabel_cli" in loaded  # the reading works: the command line itself was imported
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


# What importing every flow must not load: a command's first task waits for the flows' imports,
# and these are needed only by the models and reports that use them (pandas alone was 0.3 s).
FLOWS_LEAVE_OUT = HEAVY - {"cv2", "numpy", "PIL", "pycocotools"}  # the converters' own


def test_the_flows_load_no_model_table_or_chart_library() -> None:
    code = (
        "import importlib, pkgutil, sys, flows\n"
        "for found in pkgutil.iter_modules(flows.__path__):\n"
        "    importlib.import_module(f'flows.{found.name}')\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    loaded = set(python_prints(code).split())
    assert "prefect" in loaded  # the flows were imported
    assert not loaded & FLOWS_LEAVE_OUT, sorted(loaded & FLOWS_LEAVE_OUT)


def test_every_public_name_resolves_from_its_module() -> None:
    """The top level is loaded lazily: each name in ``__all__`` is the object its module holds."""
    mapping = prelabel._MODULE_OF
    assert set(mapping) == set(prelabel.__all__) - {"__version__"}
    for name, module in mapping.items():
        assert getattr(prelabel, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        prelabel.missing  # noqa: B018


def test_prelabel_ingest_is_the_wing_and_ingest_items_the_function() -> None:
    code = (
        "import types, prelabel\n"
        "from prelabel import ingest_items\n"
        "from prelabel.ingest.manifest import ingest_items as function\n"
        "import prelabel.ingest.sources\n"
        "assert ingest_items is prelabel.ingest_items is function\n"
        "assert isinstance(prelabel.ingest, types.ModuleType), prelabel.ingest\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
