"""Settings: the environment-name contract, fallbacks, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from prelabel.core.errors import SettingsError
from prelabel.core.settings import Settings, load_settings, token_kind

_NAMES = [
    "PRELABEL_LS_URL",
    "PRELABEL_LS_API_KEY",
    "LABEL_STUDIO_URL",
    "LABEL_STUDIO_API_KEY",
    "PRELABEL_DINOX_TOKEN",
    "PRELABEL_DINOX_BASE_URL",
    "PRELABEL_CACHE_DIR",
]


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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ls_url": "localhost:8080"}, "http"),  # scheme missing
        ({"post_batch_size": 0}, "post_batch_size"),  # below bound
    ],
)
def test_invalid_settings(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(**overrides)


def test_missing_key_names_the_variables() -> None:
    with pytest.raises(SettingsError, match="PRELABEL_LS_API_KEY"):
        Settings().require_ls_api_key()


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        ("0123456789abcdef0123456789abcdef01234567", "legacy"),  # 40-hex legacy token
        ("eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl", "personal"),  # JWT
    ],
)
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


# -- precedence: options, then the environment, then .env, then the default -----------------

_HIJACKERS = ["LS_URL", "ls_url", "Ls_Url", "LS_API_KEY", "ls_api_key"]


@pytest.mark.parametrize(
    ("environment", "dotenv", "url", "key"),
    [
        ({}, {}, "http://localhost:8080", None),  # nothing set: the default, no key
        ({}, {"PRELABEL_LS_URL": "http://dotenv:1", "PRELABEL_LS_API_KEY": "d"}, "http://dotenv:1", "d"),
        # the environment beats .env, name by name
        (
            {"PRELABEL_LS_URL": "http://env:2"},
            {"PRELABEL_LS_URL": "http://dotenv:1", "PRELABEL_LS_API_KEY": "d"},
            "http://env:2",
            "d",
        ),
        ({"LABEL_STUDIO_URL": "http://ls:3", "LABEL_STUDIO_API_KEY": "l"}, {}, "http://ls:3", "l"),
        # PRELABEL_* beats Label Studio's own names
        ({"LABEL_STUDIO_URL": "http://ls:3", "PRELABEL_LS_URL": "http://env:2"}, {}, "http://env:2", None),
        # a field's own name is no variable, in any case, in the shell or in .env
        (
            {name: "http://hijack:9" for name in _HIJACKERS},
            {"ls_url": "http://hijack:8", "LS_API_KEY": "h"},
            "http://localhost:8080",
            None,
        ),
        (
            {"PRELABEL_LS_URL": "http://env:2", **{name: "http://hijack:9" for name in _HIJACKERS}},
            {},
            "http://env:2",
            None,
        ),
    ],
)
def test_where_the_url_and_key_come_from(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    environment: dict[str, str],
    dotenv: dict[str, str],
    url: str,
    key: str | None,
) -> None:
    for name in _HIJACKERS:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in dotenv.items()))
    settings = Settings()
    assert settings.ls_url == url
    assert (settings.ls_api_key and settings.ls_api_key.get_secret_value()) == key


def _everything_set_against(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every other source names another server and key: .env, PRELABEL_*, Label Studio's names
    and the names that must never be read."""
    (tmp_path / ".env").write_text("PRELABEL_LS_URL=http://dotenv:1\nPRELABEL_LS_API_KEY=dotenv-key\n")
    for name, value in {
        "PRELABEL_LS_URL": "http://env:2",
        "PRELABEL_LS_API_KEY": "env-key",
        "LABEL_STUDIO_URL": "http://ls:3",
        "LABEL_STUDIO_API_KEY": "ls-key",
        "LS_URL": "http://hijack:4",
        "ls_url": "http://hijack:5",
        "LS_API_KEY": "hijack-key",
    }.items():
        monkeypatch.setenv(name, value)


def test_an_option_pair_is_never_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--ls-url`` with ``--api-key`` reach that server with that key, whatever else is set."""
    from tests.support.cli import prelabel
    from tests.support.standin import standin

    _everything_set_against(monkeypatch, tmp_path)
    with standin("label-studio") as server:
        done = prelabel(
            capsys, monkeypatch, "project", "show", "1", "--ls-url", server.url, "--api-key", "option-key"
        )
    assert (done.code, done.err) == (0, "") and done.out.startswith("project 1: stand-in\n")
    assert {auth for _, _, auth in server.seen} == {"", "Token option-key"}  # "": the version check


def test_the_environment_beats_dotenv_at_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.cli import prelabel
    from tests.support.standin import standin

    _everything_set_against(monkeypatch, tmp_path)
    with standin("label-studio") as server:
        monkeypatch.setenv("PRELABEL_LS_URL", server.url)
        done = prelabel(capsys, monkeypatch, "project", "show", "1")
    assert (done.code, done.err) == (0, "") and done.out.startswith("project 1: stand-in\n")
    assert {auth for _, _, auth in server.seen} == {"", "Token env-key"}


def test_a_url_option_alone_never_takes_the_configured_key_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.cli import prelabel

    _everything_set_against(monkeypatch, tmp_path)
    done = prelabel(capsys, monkeypatch, "project", "show", "1", "--ls-url", "http://other:7")
    assert (done.code, done.out) == (2, "")
    assert done.err == (
        "prelabel: error: Label Studio URL http://other:7 is not the configured one (http://env:2): its key "
        "is not sent to another server; pass --api-key with --ls-url, set PRELABEL_LS_URL with "
        "PRELABEL_LS_API_KEY, or name a Secret block (api_key_block) holding that server's key\n"
    )
