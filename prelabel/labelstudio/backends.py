"""A project's ML backends and the webhook that goes with one: list them, connect prelabel's.

Connecting (``POST /api/ml``) makes Label Studio call the backend's ``/health`` and ``/setup``
before it answers, so a connection it accepts has already made the round trip; the model
version ``/setup`` answered is recorded with it, and becomes the backend's title: Label Studio
shows annotators the predictions of the project's model version, which it accepts only as a
backend's title (or a version that has predictions already). Label Studio also registers a webhook at
``<url>/webhook`` for every action, unless the project already has one at that URL: prelabel
creates that webhook first, for the events it acts on only and with the shared secret in a
header (``WEBHOOK_SECRET_HEADER``), so Label Studio keeps it. Then the project is set to show that
version's predictions (``show_collab_predictions``, which also makes a task opened without a
prediction ask the backend for one). ``evaluate_predictions_automatically`` stays as it is: it
makes every Data Manager page, and every task listing through the API, ask the backend for all of
its tasks without a prediction, inside the listing's request. Every step finds what an earlier
connect left and updates it, so connecting again changes settings, never duplicates.

Label Studio 1.23 refuses a backend or a webhook on a loopback or private address (HTTP 403,
"reserved network address") unless its server runs with ``ML_BLOCK_LOCAL_IP=false`` (the
backend) and ``SSRF_PROTECTION_ENABLED=false`` (the webhook); that refusal becomes one line
naming both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from prelabel.core.errors import LabelStudioError, PrelabelError
from prelabel.labelstudio.client import LabelStudioClient

__all__ = [
    "LOCAL_ADDRESS_SETTINGS",
    "WEBHOOK_ACTIONS",
    "WEBHOOK_SECRET_HEADER",
    "Backend",
    "connect_backend",
    "list_backends",
]

WEBHOOK_SECRET_HEADER = "X-Prelabel-Webhook-Secret"  # noqa: S105  (a header name, not a secret)
WEBHOOK_ACTIONS = ("TASKS_CREATED", "ANNOTATION_CREATED", "ANNOTATION_UPDATED")
LOCAL_ADDRESS_SETTINGS = "ML_BLOCK_LOCAL_IP=false and SSRF_PROTECTION_ENABLED=false"


@dataclass(frozen=True)
class Backend:
    """A project's ML backend as Label Studio reports it."""

    id: int
    url: str
    title: str
    state: str  # Connected, Disconnected, Error, ...
    interactive: bool
    model_version: str
    basic_auth: bool

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Backend:
        return cls(
            id=int(raw["id"]),
            url=str(raw.get("url") or ""),
            title=str(raw.get("title") or ""),
            state=str(raw.get("readable_state") or raw.get("state") or ""),
            interactive=bool(raw.get("is_interactive")),
            model_version=str(raw.get("model_version") or ""),
            basic_auth=raw.get("auth_method") == "BASIC_AUTH",
        )


def list_backends(client: LabelStudioClient, project_id: int) -> list[Backend]:
    """The project's ML backends (Label Studio checks each one's health as it lists them)."""
    answer = client.request("GET", "/api/ml", params={"project": project_id}).json()
    return [Backend.from_json(raw) for raw in (answer if isinstance(answer, list) else [])]


def connect_backend(
    client: LabelStudioClient,
    project_id: int,
    url: str,
    *,
    interactive: bool = False,
    webhook_secret: SecretStr | None = None,
    basic_auth: tuple[str, SecretStr] | None = None,
    timeout: float = 100.0,
) -> Backend:
    """Connect the backend at ``url`` to the project (see the module docstring); the backend as
    Label Studio then reports it. One line when Label Studio refuses a local address."""
    url = url.rstrip("/")
    try:
        _webhook(client, project_id, f"{url}/webhook", webhook_secret)
        backend = _backend(client, project_id, url, "prelabel", interactive, basic_auth, timeout)
        if backend.model_version and backend.title != backend.model_version:
            backend = _backend(
                client, project_id, url, backend.model_version, interactive, basic_auth, timeout
            )
    except LabelStudioError as exc:
        if exc.status == 403 and "reserved" in exc.detail.lower():
            raise PrelabelError(
                f"Label Studio refuses {url}: it resolves to a loopback or private address; start Label "
                f"Studio with {LOCAL_ADDRESS_SETTINGS} (see docs/label-studio-backend.md)"
            ) from exc
        raise
    if backend.state != "Connected":
        raise PrelabelError(
            f"Label Studio added the backend at {url} but reports it {backend.state or 'unknown'}"
        )
    client.show_predictions(project_id, backend.model_version)
    return backend


def _webhook(client: LabelStudioClient, project_id: int, url: str, secret: SecretStr | None) -> None:
    """The project's webhook at ``url``: the events prelabel acts on, the secret in a header."""
    headers = {WEBHOOK_SECRET_HEADER: secret.get_secret_value()} if secret is not None else {}
    body = {
        "url": url,
        "project": project_id,
        "send_payload": True,
        "send_for_all_actions": False,
        "headers": headers,
        "actions": list(WEBHOOK_ACTIONS),
        "is_active": True,
    }
    existing = client.request("GET", "/api/webhooks/", params={"project": project_id}).json()
    same = (
        [w for w in existing if isinstance(w, Mapping) and w.get("url") == url]
        if isinstance(existing, list)
        else []
    )
    if same:
        client.request("PATCH", f"/api/webhooks/{int(same[0]['id'])}/", json=body, idempotent=True)
    else:
        client.request("POST", "/api/webhooks/", json=body)


def _backend(
    client: LabelStudioClient,
    project_id: int,
    url: str,
    title: str,
    interactive: bool,
    basic_auth: tuple[str, SecretStr] | None,
    timeout: float,
) -> Backend:
    body: dict[str, Any] = {
        "url": url,
        "project": project_id,
        "title": title,
        "is_interactive": interactive,
        "timeout": timeout,
        "auth_method": "NONE",
    }
    if basic_auth is not None:
        user, password = basic_auth
        body |= {
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": user,
            "basic_auth_pass": password.get_secret_value(),
        }
    same = [b for b in list_backends(client, project_id) if b.url.rstrip("/") == url]
    if same:
        raw = client.request("PATCH", f"/api/ml/{same[0].id}", json=body, idempotent=True).json()
    else:
        raw = client.request("POST", "/api/ml", json=body).json()
    return Backend.from_json(client.request("GET", f"/api/ml/{int(raw['id'])}").json())
