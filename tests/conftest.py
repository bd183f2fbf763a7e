"""Shared test helpers: images made on the fly, so no binary fixtures are committed."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import pytest
from hypothesis import settings
from PIL import Image

from prelabel.predict.models.base import ImageItem

# A parallel run's processes share the cores: one thread each for OpenMP, BLAS and torch (set
# before numpy or torch is imported), else each would start a thread per core and oversubscribe.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_threads, "1")

# No per-example deadline: the suite shares two cores with servers, and a first example that
# imports a library would fail on time, not on what it checks.
settings.register_profile("prelabel", deadline=None)
settings.load_profile("prelabel")


def encode_image(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """Bytes of ``image`` saved in ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def random_image_item(seed: int, size: tuple[int, int]) -> ImageItem:
    """An ImageItem of random pixels (PNG) named ``<seed>.png``."""
    import numpy as np

    from prelabel.core.images import read_image_info

    rng = np.random.default_rng(seed)
    data = encode_image(Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)), "PNG")
    return ImageItem(uri=f"{seed}.png", data=data, info=read_image_info(data, f"{seed}.png"))


@pytest.fixture
def jpeg_bytes() -> bytes:
    return encode_image(Image.new("RGB", (64, 48), (200, 30, 30)))


# -- a real Label Studio for the session ---------------------------------------------------

from collections.abc import Iterator  # noqa: E402
from itertools import count  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from prelabel.ingest.samples import LABEL_CONFIG, SampleImage, make_samples  # noqa: E402
from prelabel.labelstudio.client import LabelStudioClient, Project  # noqa: E402
from prelabel.labelstudio.server import LocalLabelStudio, start_label_studio  # noqa: E402
from prelabel.records import save_raw_file  # noqa: E402
from tests.support.cli import CliRun  # noqa: E402
from tests.support.stages import Intervals  # noqa: E402

_projects = count(1)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLabelStudio]:
    """Label Studio from pip, in its own venv, headless on a free loopback port.

    Installed once into ~/.cache/prelabel (or $PRELABEL_LS_VENV); never skipped: a
    failure to start fails the tests that need it, with the server log.
    """
    yield from serve_label_studio(tmp_path_factory.mktemp("label-studio") / "data")


VALIDATION_FLAG = "fflag_feat_utc_210_prediction_validation_15082025"
UPLOAD_LIMIT = 2_000_000  # bytes per request: the strict server refuses larger uploads with 400


@pytest.fixture(scope="session")
def strict_label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLabelStudio]:
    """A second Label Studio that refuses what the first takes: prediction validation on (a flag read
    at start) and uploads over ``UPLOAD_LIMIT`` bytes a request."""
    data = tmp_path_factory.mktemp("label-studio-strict") / "data"
    env = {VALIDATION_FLAG: "true", "DATA_UPLOAD_MAX_MEMORY_SIZE": str(UPLOAD_LIMIT)}
    yield from serve_label_studio(data, env=env)


def serve_label_studio(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[LocalLabelStudio]:
    """A fixture's body: a Label Studio on ``data_dir`` (``env`` at its start), stopped after."""
    server = start_label_studio(data_dir, env=env)
    try:
        yield server
    finally:
        server.stop()


def quick_client(server: LocalLabelStudio) -> LabelStudioClient:
    """A client of ``server`` with the legacy token, quick to give up on transient failures."""
    return LabelStudioClient(server.url, server.legacy_token, timeout=30, retries=2, backoff=0.1)


@pytest.fixture
def ls_client(label_studio: LocalLabelStudio) -> Iterator[LabelStudioClient]:
    with quick_client(label_studio) as client:
        yield client


@pytest.fixture
def project(ls_client: LabelStudioClient) -> Project:
    """A fresh project with the samples' labeling config."""
    return ls_client.create_project(f"prelabel test {next(_projects)}", LABEL_CONFIG)


_TIERS = ("unit", "integration", "e2e")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``pytest -n N --dist loadgroup``: tests dealt out by group (``tests/support/grouping.py``)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.support.grouping import GroupScheduling

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier (its folder), tests that use a real Label Studio (`-m "not
    labelstudio"`) and tests that drive chromium (`-m "not browser"`); the longest groups of a
    parallel run first (``tests/support/grouping.py``: each process sorts the same way)."""
    import inspect

    from tests.support.grouping import dealing_order

    items.sort(key=lambda item: dealing_order(item.nodeid))
    for item in items:
        tier = next((part for part in Path(str(item.path)).parts if part in _TIERS), None)
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
        if {"label_studio", "strict_label_studio"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.labelstudio)
        function = getattr(item, "function", None)
        if function is not None and "chromium(" in inspect.getsource(function):
            item.add_marker(pytest.mark.browser)


def write_image(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def write_samples(folder: Path) -> list[SampleImage]:
    """The sample images in ``folder``, each with its raw file as the DINO-X scripts name it."""
    samples = make_samples()
    for sample in samples:
        write_image(folder, sample.name, sample.data)
        save_raw_file(folder / f"{Path(sample.name).stem}_dinox_preannot.json", sample.detections)
    return samples


def pytest_configure(config: pytest.Config) -> None:
    """prelabel's state (the local Prefect server, the local Label Studio's record, the prediction
    cache) in a folder of this session's own (each ``pytest -n`` worker is a session), never the
    developer's; telemetry off; no Prefect server of the shell's.
    The server is stopped at exit, after Prefect has sent its last logs (atexit runs last first)."""
    import atexit
    import tempfile

    os.environ["PRELABEL_STATE_DIR"] = tempfile.mkdtemp(prefix="prelabel-state-")
    # the session's local Prefect server starts on a migrated copy (tests/support/prefect_database.py)
    from tests.support.prefect_database import seed_prefect_database

    seed_prefect_database(Path(os.environ["PRELABEL_STATE_DIR"]) / "prefect" / "prefect.db")
    # Prefect's client files (results, memo store) too: parallel sessions (pytest -n) share nothing.
    os.environ["PREFECT_HOME"] = str(Path(os.environ["PRELABEL_STATE_DIR"]) / "prefect-client")
    # and the prediction cache of runs that name none: not the developer's ~/.cache/prelabel
    os.environ["PRELABEL_CACHE_DIR"] = str(Path(os.environ["PRELABEL_STATE_DIR"]) / "cache")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.pop("PREFECT_API_URL", None)
    # A flow run without a server starts Prefect's temporary one, given 20 s: the machine is busy
    # with two other sessions at the start of a parallel run (a benchmark's timed out at 20 s).
    os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    atexit.register(_stop_state, os.environ["PRELABEL_STATE_DIR"])
    # A terminated session (a CI timeout, a kill) still stops its servers: SIGTERM exits through atexit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _stop_state(folder: str) -> None:
    """Stop the session's local Prefect server, whoever started it (a fixture or a command)."""
    import shutil

    from prelabel_cli import prefectserver

    prefectserver.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server() -> str:
    """The session's real Prefect server (SQLite), started as `prelabel server start` starts it;
    flows run in this process and every `prelabel` command the tests run use it."""
    from prelabel_cli.prefectserver import ensure_server

    return ensure_server()


from tests.support.random_models import DETR_LABELS  # noqa: E402

TINY_DETR_LABELS = DETR_LABELS  # the tiny DETR's classes, as tests name them


@pytest.fixture(scope="session")
def tiny_detr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DETR with a 4-stage toy ResNet, random weights, saved like a hub checkpoint."""
    from tests.support.random_models import save_detr

    return save_detr(tmp_path_factory.mktemp("tiny-detr"))


@pytest.fixture(scope="session")
def detr_says_car(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny DETR with its classifier set so every query finds "car" (score 0.99262)."""
    from tests.support.random_models import save_detr

    return save_detr(tmp_path_factory.mktemp("detr-car"), says="car")


@pytest.fixture(scope="session")
def detr_says_dog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny DETR with its classifier set so every query finds "dog", a label no sample project has."""
    from tests.support.random_models import save_detr

    return save_detr(tmp_path_factory.mktemp("detr-dog"), says="dog")


@pytest.fixture(scope="session")
def tiny_sam3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SAM 3 with its CLIP tokenizer and preprocessor config (a folder)."""
    from tests.support.random_models import save_sam3

    return save_sam3(tmp_path_factory.mktemp("tiny-sam3"))


@pytest.fixture(scope="session")
def tiny_gsam2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny random-weight Grounding DINO and SAM 2 checkpoints: the adapter's model options."""
    from tests.support.random_models import save_grounding_dino, save_sam2

    root = tmp_path_factory.mktemp("tiny-gsam2")
    return {
        "detector": str(save_grounding_dino(root / "grounding-dino")),
        "segmenter": str(save_sam2(root / "sam2")),
    }


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-protocol server on loopback."""
    from moto.server import ThreadedMotoServer

    from prelabel.labelstudio.server import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def run_prelabel(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """The ``prelabel`` command as a user runs it, in a subprocess: it uses the session's local
    Prefect server (starting it if no test has yet), unless ``env`` names another. A command that
    has not ended after ``timeout`` seconds is killed with every process it started (a server
    that should have refused to start would run for ever) and fails the test."""
    full = {**os.environ, **(env or {}), "PYTHONPATH": str(Path(__file__).parents[1])}
    code = "from prelabel_cli.main import main; main()"
    with subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"prelabel {' '.join(args)} did not end in {timeout:g} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def cli(prefect_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliRun:
    """``run_prelabel`` in this process (``tests.support.cli.in_process``): the same call and
    answer without a new interpreter and Prefect's import to pay for each command."""
    from tests.support.cli import in_process

    return lambda *args, **given: in_process(capsys, monkeypatch, *args, **given)


@pytest.fixture(scope="session")
def tiny_siglip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SigLIP with an offline word-level tokenizer, saved like a hub checkpoint."""
    from tests.support.random_models import save_siglip

    return save_siglip(tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture(scope="session")
def tiny_vitpose(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight ViTPose (17 keypoints), saved like a hub checkpoint."""
    from tests.support.random_models import save_vitpose

    return save_vitpose(tmp_path_factory.mktemp("tiny-vitpose"))


@pytest.fixture(scope="session")
def tiny_sam3_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SAM 3 video model (detector + tracker) with its tokenizer (a folder)."""
    from tests.support.random_models import save_sam3_video

    return save_sam3_video(tmp_path_factory.mktemp("tiny-sam3-video"))


@pytest.fixture(scope="session")
def tiny_sam2_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SAM 2 video tracker (a folder)."""
    from tests.support.random_models import save_sam2_video

    return save_sam2_video(tmp_path_factory.mktemp("tiny-sam2-video"))


@pytest.fixture(scope="session")
def tiny_sam3_tracker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SAM 3 tracker (``Sam3TrackerVideoModel``, a folder)."""
    from tests.support.random_models import save_sam3_tracker_video

    return save_sam3_tracker_video(tmp_path_factory.mktemp("tiny-sam3-tracker"))


@pytest.fixture
def intervals() -> Iterator[Intervals]:
    """The stage intervals ``prelabel.predict.stages`` logs while the test runs."""
    import logging

    logger, handler = logging.getLogger("prelabel.predict.stages"), Intervals()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def label_studio_env(label_studio: LocalLabelStudio, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's Label Studio as the settings' server (``PRELABEL_LS_URL`` and key)."""
    monkeypatch.setenv("PRELABEL_LS_URL", label_studio.url)
    monkeypatch.setenv("PRELABEL_LS_API_KEY", label_studio.legacy_token.get_secret_value())


@pytest.fixture(scope="session")
def tiny_sam2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SAM 2 (a folder)."""
    from tests.support.random_models import save_sam2

    return save_sam2(tmp_path_factory.mktemp("tiny-sam2"))


@pytest.fixture(scope="session")
def tiny_dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight DINOv2 with registers (a folder)."""
    from tests.support.random_models import save_dinov2_registers

    return save_dinov2_registers(tmp_path_factory.mktemp("tiny-dinov2"))


@pytest.fixture(scope="session")
def tiny_siglip2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight SigLIP 2 vision tower (a folder)."""
    from tests.support.random_models import save_siglip2_vision

    return save_siglip2_vision(tmp_path_factory.mktemp("tiny-siglip2"))
