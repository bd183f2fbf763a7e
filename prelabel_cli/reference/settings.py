"""The settings reference: each setting, the environment variables that set it, its default."""

from __future__ import annotations

from pydantic import AliasChoices, SecretStr

from prelabel.core.settings import Settings
from prelabel_cli.reference.fields import field_default, field_type
from prelabel_cli.reference.markdown import GENERATED, code, table

__all__ = ["environment_names", "settings_page"]

_PREFIX = Settings.model_config.get("env_prefix", "")


def environment_names(field: str) -> list[str]:
    """The variables that set ``field``, first the one that wins."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if str(choice).isupper()]
    return [f"{_PREFIX}{field}".upper()]


def settings_page() -> str:
    """Every field of ``prelabel.core.settings.Settings``."""
    rows = []
    for field, info in Settings.model_fields.items():
        secret = SecretStr in getattr(info.annotation, "__args__", (info.annotation,))
        kind = "secret" if secret else field_type(info.annotation)
        names = ", else ".join(code(name) for name in environment_names(field))
        rows.append([names, kind, field_default(info), info.description or ""])
    return (
        "# Settings and environment variables\n\n" + GENERATED + "\n"
        "One precedence, highest first: a run's parameter (a command-line option, or the Prefect "
        "UI's run form), the variable in the run's environment (a deployment sets these in its job "
        "variables, a compose service in its `environment`), a `.env` file in the working folder, "
        "the default below. No other variable is read. Secrets are never shown in logs, reprs or dumps.\n\n"
        + table(["variable", "type", "default", "what it sets"], rows)
    )
