"""The settings reference: each setting, the environment variables that set it, its default."""

from __future__ import annotations

from pydantic import AliasChoices, SecretStr

from prelabel.core.settings import Settings
from prelabel.serve.settings import ServeSettings
from prelabel_cli.reference.fields import field_default, field_type
from prelabel_cli.reference.markdown import GENERATED, code, table

__all__ = ["OTHER_VARIABLES", "environment_names", "settings_page"]

_PREFIX = Settings.model_config.get("env_prefix", "")

OTHER_VARIABLES = {
    "PRELABEL_STATE_DIR": "Where `prelabel server` and `prelabel labelstudio` keep their state "
    "(default `~/.cache/prelabel`).",
    "PRELABEL_LS_VENV": "The virtual environment `prelabel labelstudio start` installs Label Studio "
    "into (default under `~/.cache/prelabel`).",
    "PRELABEL_REVIEW_TOKEN": "The review page's shared token (`prelabel review serve --token`).",
    "PRELABEL_WORKER_NAME": "The worker's name in a scale-out run's shard summaries (default the host name).",
}
"""Variables read outside the settings models, each where one command or process needs it."""


def environment_names(field: str) -> list[str]:
    """The variables that set ``field``, first the one that wins."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices if str(choice).isupper()]
    return [f"{_PREFIX}{field}".upper()]


def settings_page() -> str:
    """Every field of ``Settings`` and ``ServeSettings``, and the few other variables."""
    rows = []
    for field, info in Settings.model_fields.items():
        names = ", else ".join(code(name) for name in environment_names(field))
        rows.append([names, _kind(info.annotation), field_default(info), info.description or ""])
    prefix = ServeSettings.model_config.get("env_prefix", "")
    serve = [
        [
            code(f"{prefix}{field}".upper()),
            _kind(info.annotation),
            field_default(info),
            info.description or "",
        ]
        for field, info in ServeSettings.model_fields.items()
    ]
    others = [[code(name), what] for name, what in OTHER_VARIABLES.items()]
    columns = ["variable", "type", "default", "what it sets"]
    return (
        "# Settings and environment variables\n\n" + GENERATED + "\n"
        "One precedence, highest first: a run's parameter (a command-line option, or the Prefect "
        "UI's run form), the variable in the run's environment (a deployment sets these in its job "
        "variables, a compose service in its `environment`), a `.env` file in the working folder, "
        "the default below. Secrets are never shown in logs, reprs or dumps.\n\n"
        + table(columns, rows)
        + "\n## The ML backend\n\n`prelabel serve` and its worker processes read these too (its "
        "options, when given, set them).\n\n"
        + table(columns, serve)
        + "\n## Other variables\n\nNo other `PRELABEL_` variable is read. Prefect's own (`PREFECT_API_URL` "
        "and the rest) and Hugging Face's (`HF_HOME`, `HF_HUB_OFFLINE`) mean what their projects say.\n\n"
        + table(["variable", "what it sets"], others)
    )


def _kind(annotation: object) -> str:
    return "secret" if SecretStr in getattr(annotation, "__args__", (annotation,)) else field_type(annotation)
