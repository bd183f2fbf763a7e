"""What ``prelabel serve`` is told: the model, the budget, the limits and the secrets.

Each field reads ``PRELABEL_SERVE_<FIELD>`` (lists and mappings as JSON), so the command line,
a compose file and every worker process of one server read the same values. Where Label Studio
is, its key, S3 and the cache come from ``prelabel.core.settings`` (``PRELABEL_LS_URL``, ...), as for
every other command. Secrets are ``SecretStr``: never logged, never put in a flow parameter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prelabel.core.errors import SettingsError

__all__ = ["ServeSettings", "load_serve_settings"]


class ServeSettings(BaseSettings):
    """The ML backend's settings; see the module docstring for where they come from."""

    model_config = SettingsConfigDict(env_prefix="PRELABEL_SERVE_", env_file=".env", extra="ignore")

    model: str = Field(default="ocr", description="Model or chain from the registry, e.g. detr+vitpose.")
    model_options: dict[str, Any] = Field(default_factory=dict, description="The model's options.")
    label_map: dict[str, str] = Field(default_factory=dict, description="Model label -> project label.")
    plurals: bool = Field(default=False, description="Let 'cars' match the label 'car'.")
    cache_dir: str | None = Field(default=None, description="Prediction cache; default PRELABEL_CACHE_DIR.")
    budget: float = Field(
        default=20.0,
        gt=0,
        le=90,
        description="Seconds /predict works on a request before answering; the rest goes to a flow run "
        "(Label Studio waits 100 s at most).",
    )
    max_body_bytes: int = Field(default=16 * 2**20, ge=1024, description="Largest request body accepted.")
    projects: list[int] = Field(
        default_factory=list, description="Projects served (empty: any the key sees)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="Shared secret of Label Studio's webhook."
    )
    basic_auth_user: str | None = Field(default=None, description="HTTP basic auth user Label Studio sends.")
    basic_auth_password: SecretStr | None = Field(default=None, description="... and its password.")
    debounce: float = Field(
        default=5.0, ge=0, le=600, description="Quiet seconds before new tasks go to a run."
    )
    handoff_ttl: float = Field(
        default=3600.0, gt=0, description="Seconds a task handed to a run is left to it (then asked again)."
    )
    state_dir: Path = Field(
        default=Path.home() / ".cache" / "prelabel" / "serve",
        description="Where the record of handed-over tasks lives (shared by the worker processes).",
    )
    preannotate_deployment: str | None = Field(
        default="preannotate/preannotate",
        description="The deployment that takes tasks /predict and the webhook hand over (none: never).",
    )
    pull_deployment: str = Field(
        default="pull-annotations/pull-annotations", description="The incremental pull deployment."
    )
    run_output: str = Field(
        default="prelabel-output/serve",
        description="Where a handed-over run writes its reports (on its worker; one folder per project).",
    )
    pull_out: str | None = Field(
        default=None, description="Folder annotations are pulled into when they change (none: no pull)."
    )
    segmenter: str | None = Field(
        default=None,
        description="SAM 2 checkpoint for clicks and boxes; default the model's own segmenter option.",
    )
    device: str | None = Field(
        default=None, description="The segmenter's device (default CUDA when present)."
    )
    find_all_control: str = Field(
        default="find_all", description="The smart RectangleLabels whose box asks for every similar instance."
    )
    feature_cache: int = Field(default=16, ge=1, le=1024, description="Images whose features are kept.")

    @model_validator(mode="after")
    def _basic_auth_pair(self) -> ServeSettings:
        if (self.basic_auth_user is None) != (self.basic_auth_password is None):
            raise ValueError("basic auth needs both PRELABEL_SERVE_BASIC_AUTH_USER and _PASSWORD")
        return self

    @property
    def segmenter_checkpoint(self) -> str | None:
        """The SAM 2 checkpoint clicks go to: ``segmenter``, else the model's own (grounded-sam2)."""
        own = self.model_options.get("segmenter")
        return self.segmenter or (own if isinstance(own, str) else None)


def load_serve_settings(**overrides: object) -> ServeSettings:
    """Settings with explicit overrides (flags) over ``PRELABEL_SERVE_*``; None overrides ignored."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return ServeSettings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:  # said per setting, never with the values (secrets among them)
        said = "; ".join(
            f"{'PRELABEL_SERVE_' + str(e['loc'][0]).upper() + ': ' if e['loc'] else ''}"
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise SettingsError(f"invalid serve settings: {said}") from None
