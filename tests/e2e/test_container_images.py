"""The images, built from the Dockerfiles as shipped and run, without a Docker engine (buildah).

The ``container`` tier: a stand-in ``python:3.11-slim-bookworm`` from Debian's mirror
(``tests/support/python_base.py``), the CPU image built from ``docker/Dockerfile``, and the
commands a deployment relies on run inside it as its user: ``prelabel version``, ``prelabel
models``, ``prefect version``, one OpenCV that imports, and the OCR model on a sample image, whose
prediction must equal the one made in this environment. The GPU image (``docker/Dockerfile.gpu``,
torch's CUDA wheels, several GB) is built when asked for: ``scripts/test --gpu-image`` (or
``PRELABEL_TEST_GPU_IMAGE=1``); inside it torch, transformers and every model module import (no
GPU needed). Build times and sizes are printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import prelabel
from prelabel.ingest.samples import make_samples
from tests.conftest import run_prelabel
from tests.support import REPO
from tests.support.buildah import Buildah, buildah_unusable, locked_store
from tests.support.compose import built_images
from tests.support.python_base import BASE, ensure_python_base

pytestmark = pytest.mark.container

ROOT = REPO
IMAGES = built_images()
"""Tag -> Dockerfile: what docker/compose.yaml builds is what this tier builds (tests/e2e/test_docker.py
checks that these are the CPU and GPU images and that compose uses no other image of ours)."""
GPU_OPT_IN = "PRELABEL_TEST_GPU_IMAGE"
ONE_OPENCV = (
    "import importlib.metadata as m, cv2; print(sorted(m.packages_distributions()['cv2']), cv2.__version__)"
)


def _say(config: pytest.Config, line: str) -> None:
    """A measured figure on the terminal as it comes, past pytest's capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"container tier: {line}")


@pytest.fixture(scope="module")
def buildah(pytestconfig: pytest.Config) -> Iterator[Buildah]:
    reason = buildah_unusable()
    if reason is not None:
        pytest.skip(reason)
    with locked_store() as tool:
        seconds = ensure_python_base(tool)
        made = f"made in {seconds:.0f} s" if seconds else "cached"
        _say(pytestconfig, f"stand-in base {made}, {tool.size(BASE) / 1e6:.0f} MB uncompressed")
        yield tool


@contextlib.contextmanager
def _built(tool: Buildah, config: pytest.Config, tag: str, timeout: float) -> Iterator[str]:
    built = tool.build(ROOT / IMAGES[tag], tag, ROOT, timeout=timeout)
    _say(config, f"{tag} built in {built.seconds:.0f} s, {built.size / 1e9:.2f} GB uncompressed")
    try:
        yield tag
    finally:
        tool("rmi", tag)  # GBs: only the base is worth keeping
        tool.prune()


@pytest.fixture(scope="module")
def cpu_image(buildah: Buildah, pytestconfig: pytest.Config) -> Iterator[str]:
    with _built(buildah, pytestconfig, "prelabel-cpu:latest", timeout=1800) as tag:
        yield tag


@pytest.fixture(scope="module")
def gpu_image(buildah: Buildah, pytestconfig: pytest.Config) -> Iterator[str]:
    if os.environ.get(GPU_OPT_IN) != "1":
        pytest.skip(f"the GPU image is built on request: scripts/test --gpu-image (or {GPU_OPT_IN}=1)")
    with _built(buildah, pytestconfig, "prelabel-gpu:latest", timeout=3600) as tag:
        yield tag


def _output(
    tool: Buildah,
    image: str,
    *command: str,
    volumes: dict[Path, str] | None = None,
    env: dict[str, str] | None = None,
) -> str:
    done = tool.run(image, *command, volumes=volumes, env=env)
    assert done.returncode == 0, f"{' '.join(command)} in {image}:\n{(done.stdout + done.stderr)[-3000:]}"
    return done.stdout


def test_cpu_image_runs_the_command_line_as_its_user(buildah: Buildah, cpu_image: str) -> None:
    assert _output(buildah, cpu_image, "id", "-u").strip() == "10001"
    assert _output(buildah, cpu_image, "prelabel", "version").strip() == prelabel.__version__
    models = _output(buildah, cpu_image, "prelabel", "models")
    assert "ocr: " in models and "chains: " in models, models
    prefect = re.search(r"^Version: +(\S+)$", _output(buildah, cpu_image, "prefect", "version"), re.M)
    assert prefect is not None and prefect[1] == importlib.metadata.version("prefect")  # the pinned one


def test_cpu_image_has_one_opencv_and_it_imports(buildah: Buildah, cpu_image: str) -> None:
    # The full opencv-python's cv2 needs libxcb and libGL, which a slim image lacks.
    assert _output(buildah, cpu_image, "python", "-c", ONE_OPENCV).startswith("['opencv-python-headless'] ")


def test_ocr_in_the_cpu_image_equals_ocr_here(
    buildah: Buildah, cpu_image: str, prefect_server: str, tmp_path: Path
) -> None:
    """The sample stored sideways (EXIF orientation 6), read by PP-OCRv4 in the image and here. The
    image's command uses the session's Prefect server, as a worker uses the stack's (chroot
    isolation shares the host's loopback), so it leaves no server of its own running."""
    sample = make_samples()[2]
    images, inside, here = tmp_path / "images", tmp_path / "inside", tmp_path / "here"
    for folder in (images, inside, here):
        folder.mkdir()
    (images / sample.name).write_bytes(sample.data)
    inside.chmod(0o777)  # written by the image's user, 10001
    _output(
        buildah,
        cpu_image,
        "prelabel",
        "infer",
        "--model",
        "ocr",
        "--input-dir",
        "/images",
        "--out",
        "/out",
        "--cache-dir",
        "/out/cache",
        volumes={images: "/images", inside: "/out"},
        env={"PREFECT_API_URL": prefect_server},
    )
    done = run_prelabel(
        "infer",
        "--model",
        "ocr",
        "--input-dir",
        str(images),
        "--out",
        str(here),
        "--cache-dir",
        str(here / "cache"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    name = f"{sample.name}.prelabel.json"
    predicted = json.loads((inside / name).read_text())
    assert predicted["objects"], predicted  # the sign's text was read
    assert predicted == json.loads((here / name).read_text())


def test_gpu_image_imports_torch_transformers_and_every_model(buildah: Buildah, gpu_image: str) -> None:
    code = (
        "import importlib, pkgutil, torch, transformers, prelabel.predict.models as m\n"
        "for module in pkgutil.iter_modules(m.__path__):\n"
        "    importlib.import_module(f'prelabel.predict.models.{module.name}')\n"
        "print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version(),\n"
        "      transformers.__version__)"
    )
    torch_version, cuda, cudnn, _ = _output(buildah, gpu_image, "python", "-c", code).split()
    assert cuda != "None", f"torch {torch_version} is a CPU build"  # the CUDA wheels, libraries included
    assert cudnn != "None", "cuDNN did not load"
    assert _output(buildah, gpu_image, "prelabel", "version").strip() == prelabel.__version__
    assert _output(buildah, gpu_image, "python", "-c", ONE_OPENCV).startswith("['opencv-python-headless'] ")
