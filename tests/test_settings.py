"""Settings: the environment-name contract, fallbacks, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from prelabel.errors import SettingsError
from prelabel.settings import Settings, load_settings, token_kind

_NAMES = [
    "PRELABEL_LS_URL", "PRELABEL_LS_API_KEY", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY",
    "PRELABEL_DINOX_TOKEN", "PRELABEL_DINOX_BASE_URL", "PRELABEL_CACHE_DIR",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_prelabel_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRELABEL_LS_URL", "http://127.0.0.1:9000/")
    monkeypatch.setenv("PRELABEL_LS_API_KEY", "abc123")
    monkeypatch.setenv("PRELABEL_DINOX_TOKEN", "dino-secret")
    monkeypatch.setenv("PRELABEL_DINOX_BASE_URL", "http://127.0.0.1:9001")
    monkeypatch.setenv("PRELABEL_CACHE_DIR", "/tmp/c")
    settings = Settings()
    assert settings.ls_url == "http://127.0.0.1:9000"
    assert settings.require_ls_api_key().get_secret_value() == "abc123"
    assert settings.dinox_token is not None and settings.dinox_token.get_secret_value() == "dino-secret"
    assert settings.dinox_base_url == "http://127.0.0.1:9001"
    assert settings.cache_dir == Path("/tmp/c")
    shown = repr(settings) + str(settings.model_dump()) + settings.model_dump_json()
    assert "abc123" not in shown and "dino-secret" not in shown


def test_label_studio_names_are_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://ls:8080")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "legacy")
    settings = Settings()
    assert settings.ls_url == "http://ls:8080"
    assert settings.ls_api_key is not None and settings.ls_api_key.get_secret_value() == "legacy"
    monkeypatch.setenv("PRELABEL_LS_URL", "http://preferred:8080")
    assert Settings().ls_url == "http://preferred:8080"


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PRELABEL_LS_API_KEY=from-dotenv\nPRELABEL_POST_BATCH_SIZE=50\n")
    settings = Settings()
    assert settings.ls_api_key is not None and settings.ls_api_key.get_secret_value() == "from-dotenv"
    assert settings.post_batch_size == 50


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRELABEL_LS_URL", "http://env:1")
    assert load_settings(ls_url="http://flag:2", ls_api_key=None).ls_url == "http://flag:2"
    assert load_settings(ls_url=None).ls_url == "http://env:1"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"ls_url": "localhost:8080"}, "http"),  # scheme missing
    ({"post_batch_size": 0}, "post_batch_size"),  # below bound
])  # fmt: skip
def test_invalid_settings(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(**overrides)


def test_missing_key_names_the_variables() -> None:
    with pytest.raises(SettingsError, match="PRELABEL_LS_API_KEY"):
        Settings().require_ls_api_key()


@pytest.mark.parametrize(("token", "kind"), [
    ("0123456789abcdef0123456789abcdef01234567", "legacy"),  # 40-hex legacy token
    ("eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl", "personal"),  # JWT
])  # fmt: skip
def test_token_kind(token: str, kind: str) -> None:
    assert token_kind(token) == kind


def test_secrets_are_refused_as_model_options() -> None:
    from pydantic import ValidationError

    from flows.params import InferParams, ShardParams

    with pytest.raises(ValidationError, match="looks like a secret"):
        InferParams(input_dir="x", out="o", model="dinox", model_options={"token": "abc"})
    with pytest.raises(ValidationError, match="looks like a secret"):
        ShardParams(images=[], shard="s", model="dinox", model_options={"S3_Secret_Key": "abc"})
    assert InferParams(input_dir="x", out="o", model_options={"classes": "car"}).model_options == {
        "classes": "car"
    }
