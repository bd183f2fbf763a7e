"""Label Studio's ML-backend protocol as typed requests and answers (``ml/api_connector.py``).

Label Studio calls ``GET /health``, then ``POST /setup`` (``project`` as "id.timestamp", the
labeling config as ``schema``; answered with the ``model_version``), then ``POST /predict``
(``tasks``, ``project``, ``label_config``, ``params`` with ``context`` for an interactive
request). The answer holds exactly one entry per task, in order: a count that differs makes
Label Studio drop them all. An entry is one prediction or a list of them; an empty list is a
task answered with nothing now (Label Studio stores nothing for it, so a later run may post
it). Unknown keys are ignored (Label Studio adds fields between versions); what prelabel reads
is checked, and a request that breaks a rule is refused whole, with a 4xx naming it.
Predictions go back as the builder made them (``build_prediction``), not validated again: a
brush's RLE is thousands of numbers per region.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from prelabel.core.errors import RefusedRequestError

__all__ = [
    "MAX_TASKS",
    "PredictRequest",
    "SetupRequest",
    "SetupResponse",
    "TaskIn",
    "WebhookEvent",
    "project_id_of",
]

MAX_TASKS = 100_000
"""Tasks one request may carry (Label Studio's "Retrieve predictions" sends a selection whole)."""


def project_id_of(project: str | int | None) -> int:
    """The project id in Label Studio's ``"id.timestamp"`` (or a plain id)."""
    text = str(project if project is not None else "").strip()
    head = text.partition(".")[0]
    if not head.isdigit() or not 0 < int(head) < 2**31:
        raise RefusedRequestError(422, f"project {text[:40]!r}: expected Label Studio's 'id.timestamp'")
    return int(head)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SetupRequest(_Lenient):
    """``/setup``: which project, its labeling config. The project creator's token Label Studio
    sends along is never used (the configured key is) nor shown."""

    project: str | int
    schema_: str = Field(default="", alias="schema", max_length=1_000_000)
    hostname: str = ""
    access_token: SecretStr | None = None
    model_version: str | None = None


class SetupResponse(BaseModel):
    model_version: str


class TaskIn(_Lenient):
    """A task as Label Studio serialises it; ``data`` holds the image reference."""

    id: int = Field(ge=1, lt=2**63)
    data: dict[str, Any]


class _Context(_Lenient):
    result: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)


class _Params(_Lenient):
    context: _Context | None = None


class PredictRequest(_Lenient):
    """``/predict``: tasks of one project; ``params.context`` set for a click or a drawn box."""

    tasks: list[TaskIn] = Field(min_length=1, max_length=MAX_TASKS)
    project: str | int | None = None
    label_config: str | None = None
    params: _Params = Field(default_factory=_Params)

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def context(self) -> list[dict[str, Any]] | None:
        """The interactive context's results, or None for a plain prediction request."""
        context = self.params.context
        return None if context is None or not context.result else context.result


class _ProjectRef(_Lenient):
    id: int = Field(ge=1, lt=2**31)


class _TaskRef(_Lenient):
    id: int = Field(ge=1, lt=2**63)


class WebhookEvent(_Lenient):
    """A Label Studio webhook: ``action``, the project, and the tasks or annotation it is about."""

    action: str = Field(max_length=100)
    project: _ProjectRef | None = None
    tasks: list[_TaskRef] = Field(default_factory=list, max_length=MAX_TASKS)
