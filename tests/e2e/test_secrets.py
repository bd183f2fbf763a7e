"""Secrets go only to the endpoint they were configured for, and never into outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from flows.common import connection
from flows.params import LabelStudioParams
from prelabel.core.errors import SettingsError
from prelabel.ingest.samples import make_samples
from prelabel.predict.models import create_model
from tests.conftest import encode_image, run_prelabel
from tests.support.http_faults import Site, serve

KEY = "configured-key-0123456789"
TOKEN = "configured-dinox-token-42"


def _env() -> dict[str, str]:
    return {
        "PRELABEL_LS_URL": "http://127.0.0.1:9",
        "PRELABEL_LS_API_KEY": KEY,
        "PRELABEL_DINOX_TOKEN": TOKEN,
    }


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--input-dir", "images", "--project-id", "1", "--model", "ocr"],  # --ls-url alone
        ["pull", "--project-id", "1", "--output-dir", "pulled"],
        ["review", "create", "--project-id", "1", "--model-version", "v", "--set", "set.sqlite"],
    ],
)
def test_a_url_named_alone_gets_no_key(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(make_samples()[0].data)  # past the empty-folder check
    with serve(Site({})) as site:
        done = run_prelabel(*args, "--ls-url", site.url, cwd=tmp_path, env=_env())
        assert not site.hits and not site.posts  # not one request reached the other host
    assert done.returncode == 2, done.stderr
    assert "not the configured one" in done.stderr and KEY not in done.stdout + done.stderr


def test_a_flow_parameter_url_gets_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="not the configured one"):
        connection(LabelStudioParams(project_id=1, ls_url="http://elsewhere:8080"))
    _, same = connection(LabelStudioParams(project_id=1, ls_url="http://127.0.0.1:9/"))
    assert same.url == "http://127.0.0.1:9" and same.api_key.get_secret_value() == KEY


def test_the_dinox_token_goes_only_to_its_base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in _env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match="not the configured DINO-X API"):
        create_model("dinox", base_url="http://elsewhere:8080")
    create_model("dinox", base_url="http://elsewhere:8080", token="its-own-token")  # a pair: allowed
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(make_samples()[0].data)  # past the empty-folder check
    with serve(Site({})) as site:
        done = run_prelabel(
            "infer",
            "--input-dir",
            "images",
            "--model",
            "dinox",
            "--output-dir",
            "raw",
            "--model-option",
            f"base_url={site.url}",
            cwd=tmp_path,
            env=_env(),
        )
        assert not site.hits and not site.posts
    assert done.returncode == 2 and "not the configured DINO-X API" in done.stderr, done.stderr
    assert TOKEN not in done.stdout + done.stderr


def test_credentials_in_urls_stay_out_of_outputs(tmp_path: Path) -> None:
    png = encode_image(Image.new("RGB", (8, 6), (1, 2, 3)), "PNG")
    with serve(Site({"a.png": png})) as site:
        host = site.url.removeprefix("http://")
        good = f"{site.url}/img/a.png?X-Amz-Credential=AKIAKEY&X-Amz-Signature=goodsig"
        bad = f"http://user:pa55word@{host}/missing/a.png?token=badtoken&page=2"
        flaky = f"{site.url}/flaky/a.png?X-Amz-Signature=flakysig"
        (tmp_path / "urls.txt").write_text(f"{good}\n{bad}\n{flaky}\n")
        done = run_prelabel(
            "ingest", "--source", "urls.txt", "--manifest", "m.csv", "--allow-failures", cwd=tmp_path
        )
    assert done.returncode == 0, done.stderr[-2000:]
    written = "".join(p.read_text() for p in tmp_path.glob("m_*.csv"))
    shown = done.stdout + done.stderr + written
    for secret in ("pa55word", "badtoken", "flakysig", "goodsig", "AKIAKEY"):
        assert secret not in shown, secret
    assert f"http://{host}/missing/a.png?token=REDACTED&page=2" in written  # the row still names it
    assert good in (tmp_path / "m.csv").read_text()  # a manifest keeps URIs fetchable, as given
