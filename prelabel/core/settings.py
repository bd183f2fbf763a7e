"""Settings from flags, the environment (``PRELABEL_*``) and a ``.env`` file.

Label Studio's own ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY`` are honoured when the
``PRELABEL_`` names are unset, since Label Studio users already have them. No other name is
read: a field's own name (``ls_url``) is no variable, so a shell's ``LS_URL`` (in any case)
can never redirect a run or its key. Secrets are ``SecretStr``: their repr, logs and model
dumps show ``**********``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prelabel.core.defaults import DEFAULT_MAX_PIXELS
from prelabel.core.errors import SettingsError

__all__ = ["Settings", "TokenKind", "load_settings", "token_kind"]

TokenKind = Literal["legacy", "personal"]


def token_kind(token: str) -> TokenKind:
    """A personal access token is a JWT (three dot-separated parts); else a legacy token."""
    parts = token.split(".")
    return "personal" if len(parts) == 3 and all(parts) else "legacy"


class Settings(BaseSettings):
    """Everything configurable; each field reads ``PRELABEL_<FIELD>`` unless noted.

    Each field's default is the one default of its setting. Precedence, highest first: a
    run's parameter (a command-line option, the Prefect UI's run form), ``PRELABEL_*`` in
    the run's environment (a deployment sets these in its job variables), a ``.env`` file,
    this default.
    """

    model_config = SettingsConfigDict(
        env_prefix="PRELABEL_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    ls_url: str = Field(
        default="http://localhost:8080",
        validation_alias=AliasChoices("PRELABEL_LS_URL", "LABEL_STUDIO_URL"),
        description="Label Studio base URL (PRELABEL_LS_URL, else LABEL_STUDIO_URL).",
    )
    ls_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("PRELABEL_LS_API_KEY", "LABEL_STUDIO_API_KEY"),
        description="Legacy token or personal access token (PRELABEL_LS_API_KEY, else LABEL_STUDIO_API_KEY).",
    )
    dinox_token: SecretStr | None = Field(default=None, description="DINO-X API token.")
    dinox_base_url: str = Field(default="https://api.deepdataspace.com", description="DINO-X API base URL.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto, ...)."
    )
    s3_region: str | None = Field(default=None, description="S3 region name.")
    s3_access_key_id: SecretStr | None = Field(default=None, description="S3 access key id.")
    s3_secret_access_key: SecretStr | None = Field(default=None, description="S3 secret access key.")
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "prelabel",
        description="Raw-prediction cache: a local directory (or s3://bucket/prefix).",
    )
    infer_batch_size: int = Field(default=16, ge=1, le=4096, description="Images per model batch.")
    post_batch_size: int = Field(default=500, ge=1, le=10_000, description="Predictions per bulk POST.")
    task_batch_size: int = Field(default=256, ge=1, le=10_000, description="Images per Prefect task run.")
    max_image_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS, ge=1, description="Refuse images with more pixels than this."
    )
    request_timeout: float = Field(default=60.0, gt=0, description="Seconds per HTTP request.")

    @field_validator("ls_url", "dinox_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @property
    def ls_token_kind(self) -> TokenKind | None:
        """Which Label Studio credential the key is, or None when there is none."""
        return None if self.ls_api_key is None else token_kind(self.ls_api_key.get_secret_value())

    def ls_key_for(self, url: str | None) -> SecretStr:
        """The configured Label Studio key, for the configured URL only.

        A URL named elsewhere (a flow parameter, ``--ls-url`` alone) never receives the key
        configured for another server: the key is bound to ``ls_url``.
        """
        if url is not None and url.rstrip("/") != self.ls_url:
            raise SettingsError(
                f"Label Studio URL {url} is not the configured one ({self.ls_url}): its key is not sent "
                "to another server; pass --api-key with --ls-url, set PRELABEL_LS_URL with "
                "PRELABEL_LS_API_KEY, or name a Secret block (api_key_block) holding that server's key"
            )
        return self.require_ls_api_key()

    def require_ls_api_key(self) -> SecretStr:
        """The Label Studio key, or a SettingsError naming the variables to set."""
        if self.ls_api_key is None or not self.ls_api_key.get_secret_value():
            raise SettingsError(
                "no Label Studio API key: pass --api-key or set PRELABEL_LS_API_KEY (or LABEL_STUDIO_API_KEY)"
            )
        return self.ls_api_key


def load_settings(**overrides: object) -> Settings:
    """Settings with explicit overrides (flags) on top of environment and ``.env``.

    ``None`` overrides are ignored so unset flags fall through to the environment.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SettingsError(f"invalid settings: {exc}") from exc
