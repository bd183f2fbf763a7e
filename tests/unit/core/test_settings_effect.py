"""Each documented ``PRELABEL_*`` setting changes what a run does, and a parameter beats it.

The settings that name servers and secrets (Label Studio URL and key, DINO-X token and base
URL, S3 endpoint and keys) are exercised end to end elsewhere: every flow test reaches Label
Studio through them, ``test_cli_flows.test_run_with_dinox`` the DINO-X server, the S3 tests
moto's server. Here: the ones that shape a run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from flows.common import RunSizes, connection, prediction_cache
from flows.params import InferParams, LabelStudioParams, PreannotateParams
from prelabel.core.errors import LabelStudioUnavailableError
from prelabel.core.retry import RetryPolicy
from prelabel.predict.batches import read_items
from prelabel.store.cache import LocalCache
from tasks.inference import model_for
from tests.conftest import encode_image
from tests.support.http_faults import Site, serve


def _preannotate(**given: object) -> PreannotateParams:
    return PreannotateParams.model_validate({"project_id": 1, "input_dir": "images", **given})


@pytest.mark.parametrize(
    ("variable", "field", "value"),
    [
        ("PRELABEL_TASK_BATCH_SIZE", "task_batch", 7),
        ("PRELABEL_POST_BATCH_SIZE", "post_chunk", 11),
        ("PRELABEL_MAX_IMAGE_PIXELS", "max_pixels", 1234),
    ],
)
def test_sizes_come_from_the_environment_unless_a_parameter_says(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str, value: int
) -> None:
    defaults = RunSizes.of(_preannotate())
    assert (defaults.task_batch, defaults.post_chunk, defaults.max_pixels) == (256, 500, 100_000_000)
    monkeypatch.setenv(variable, str(value))
    assert getattr(RunSizes.of(_preannotate()), field) == value
    parameter = {
        "task_batch": "batch_size",
        "post_chunk": "post_chunk_size",
        "max_pixels": "max_image_pixels",
    }
    assert getattr(RunSizes.of(_preannotate(**{parameter[field]: 3})), field) == 3  # the parameter wins


def test_max_image_pixels_refuses_larger_images(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(encode_image(Image.new("RGB", (40, 30)), "PNG"))
    monkeypatch.setenv("PRELABEL_MAX_IMAGE_PIXELS", "1000")
    items, errors = read_items([str(path)], RunSizes.of(_preannotate()).max_pixels)
    assert items == [] and "1,200 pixels exceeds the limit of 1,000" in errors[0].error
    monkeypatch.setenv("PRELABEL_MAX_IMAGE_PIXELS", "2000")
    items, errors = read_items([str(path)], RunSizes.of(_preannotate()).max_pixels)
    assert len(items) == 1 and errors == []


def test_infer_batch_size_reaches_batching_models(monkeypatch: pytest.MonkeyPatch, tiny_detr: Path) -> None:
    options = {"checkpoint": str(tiny_detr), "device": "cpu"}
    assert model_for("detr", options).batch_size == 16  # type: ignore[attr-defined]
    monkeypatch.setenv("PRELABEL_INFER_BATCH_SIZE", "3")
    assert model_for("detr", options).batch_size == 3  # type: ignore[attr-defined]
    assert model_for("detr", {**options, "batch_size": 5}).batch_size == 5  # type: ignore[attr-defined]


def test_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRELABEL_CACHE_DIR", str(tmp_path / "from-env"))
    params = InferParams(input_dir="images", out="raw")
    cache = prediction_cache(params)
    assert isinstance(cache, LocalCache) and cache.root == tmp_path / "from-env"
    given = prediction_cache(params.model_copy(update={"cache_dir": str(tmp_path / "given")}))
    assert isinstance(given, LocalCache) and given.root == tmp_path / "given"


def test_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    png = encode_image(Image.new("RGB", (4, 4)), "PNG")
    with serve(Site({"a.png": png}, slow=1.0)) as site:
        monkeypatch.setenv("PRELABEL_LS_URL", site.url)
        monkeypatch.setenv("PRELABEL_LS_API_KEY", "k")
        monkeypatch.setenv("PRELABEL_REQUEST_TIMEOUT", "0.2")
        with connection(LabelStudioParams(project_id=1))[1].client() as client:
            client.policy = RetryPolicy(retries=0)
            with pytest.raises(LabelStudioUnavailableError, match="ReadTimeout"):
                client.request("GET", "/slow/a.png")
        monkeypatch.setenv("PRELABEL_REQUEST_TIMEOUT", "5")
        with connection(LabelStudioParams(project_id=1))[1].client() as client:
            assert client.request("GET", "/slow/a.png").content == png
