"""A small Label Studio client on httpx: paged tasks, bulk imports, retries, both tokens.

Plain HTTP rather than label-studio-sdk: the SDK has no bulk prediction import, no
per-call timeouts and no retry policy for 429/5xx, which is exactly what a 100k-task run
needs. Authentication takes a legacy token (``Authorization: Token ...``) or a personal
access token (a JWT refresh token, exchanged at ``/api/token/refresh/`` for a short-lived
access token, renewed on 401). Transient failures follow the one retry policy
(``prelabel.core.retry``): reads are retried, a POST that may have been stored raises
``AmbiguousWriteError``; other 4xx answers raise ``LabelStudioError`` with Label Studio's
own message, and an answer that is not JSON (a login page, a proxy's error page) raises
``NotLabelStudioError`` saying what came instead. ``check`` tells a Label Studio from
another server before the key is sent to it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from prelabel.core.errors import (
    LabelStudioError,
    LabelStudioUnavailableError,
    NotLabelStudioError,
    PrelabelError,
)
from prelabel.core.retry import TRANSIENT_STATUS, RetryPolicy, TransientStatusError
from prelabel.core.settings import token_kind
from prelabel.labelstudio.config import LabelConfig, parse_label_config

__all__ = ["LabelStudioClient", "Project", "Task"]

log = logging.getLogger(__name__)

_LIGHT_FIELDS = "id,data,predictions_model_versions,updated_at,file_upload,total_annotations"


@dataclass(frozen=True)
class Project:
    """A project and its parsed labeling config; ``model_version`` is the one whose predictions
    annotators are shown ('' when none is set)."""

    id: int
    title: str
    label_config_xml: str
    config: LabelConfig
    model_version: str = ""


@dataclass(frozen=True)
class Task:
    """A task as prelabel needs it: its data, prediction versions and (when asked) annotations."""

    id: int
    data: Mapping[str, Any]
    model_versions: frozenset[str] = frozenset()
    updated_at: str = ""
    annotations: Sequence[Mapping[str, Any]] = ()
    predictions: Sequence[Mapping[str, Any]] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Task:
        """A task from Label Studio's JSON (light or full listing, or a stored copy)."""
        versions = raw.get("predictions_model_versions") or ""
        predictions = raw.get("predictions") or []
        names = {v for v in str(versions).split(",") if v} if isinstance(versions, str) else set(versions)
        names |= {
            str(p["model_version"]) for p in predictions if isinstance(p, dict) and p.get("model_version")
        }
        return cls(
            id=int(raw["id"]),
            data=raw.get("data") or {},
            model_versions=frozenset(names),
            updated_at=str(raw.get("updated_at") or ""),
            annotations=tuple(raw.get("annotations") or ()),
            predictions=tuple(predictions),
            raw=raw,
        )

    def image_ref(self, data_key: str) -> str:
        """The task's image reference under ``data_key`` ('' when absent)."""
        value = self.data.get(data_key, "")
        return value if isinstance(value, str) else ""


class LabelStudioClient:
    """Talks to one Label Studio server; use as a context manager or call ``close``."""

    def __init__(
        self,
        url: str,
        api_key: SecretStr | str,
        *,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not self._key.get_secret_value():
            raise PrelabelError("no Label Studio API key given")
        self._personal = token_kind(self._key.get_secret_value()) == "personal"
        self._access: str | None = None
        self.policy = RetryPolicy(retries=retries, backoff=backoff, max_backoff=max_backoff)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the server -----------------------------------------------------------------

    def check(self) -> str:
        """Label Studio's release at this URL, once the key is known to be accepted.

        The version endpoint needs no key, so a server that is not Label Studio (no JSON
        release there: ``NotLabelStudioError``) never receives it; then a call that needs
        the key (a refused one: ``LabelStudioError`` 401 or 403). Transient answers go
        through the retry policy first.
        """
        path = "/api/version"
        try:
            answer = self.request("GET", path, auth=False)
        except LabelStudioError as exc:
            if exc.status == 404:
                raise NotLabelStudioError("GET", exc.url, 404, f"404 (not found) for {path}") from exc
            raise
        body = _json(answer)
        release = body.get("release") if isinstance(body, dict) else None
        if not isinstance(release, str) or not release:
            raise NotLabelStudioError(
                "GET", str(answer.request.url), answer.status_code, "JSON without a Label Studio release"
            )
        self.request_json("GET", "/api/current-user/whoami")
        return release

    # -- projects -------------------------------------------------------------------

    def get_project(self, project_id: int) -> Project:
        """A project and its parsed labeling config."""
        return _project(self.request_json("GET", f"/api/projects/{project_id}/"))

    def find_project(self, title: str) -> Project | None:
        """The first project with exactly this title, or None."""
        answer = self.request_json("GET", "/api/projects/", params={"title": title, "page_size": 100})
        for data in answer.get("results", []) if isinstance(answer, dict) else answer:
            if data.get("title") == title:
                return _project(data)
        return None

    def create_project(self, title: str, label_config: str) -> Project:
        """Create a project (titles need at least 3 characters)."""
        body = {"title": title, "label_config": label_config}
        return _project(self.request_json("POST", "/api/projects/", json=body))

    def update_project(self, project_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change project settings (PATCH: the fields given, nothing else; safe to repeat)."""
        return dict(
            self.request_json("PATCH", f"/api/projects/{project_id}/", json=dict(fields), idempotent=True)
        )

    def show_predictions(self, project_id: int, model_version: str) -> None:
        """Show ``model_version``'s predictions to annotators: the project's model version and
        "use predictions to prelabel" (Label Studio checks the version has predictions)."""
        self.update_project(project_id, {"model_version": model_version, "show_collab_predictions": True})

    # -- tasks ----------------------------------------------------------------------

    def iter_tasks(
        self,
        project_id: int,
        *,
        page_size: int = 1000,
        full: bool = False,
        updated_after: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> Iterator[Task]:
        """Every task of a project, page by page (bounded memory).

        The light form carries data, prediction model versions and update time; ``full``
        adds annotations and predictions. ``updated_after`` (ISO time) keeps only tasks
        changed since then; ``ids`` only these tasks (the data manager's ``selectedItems``;
        ids of other projects or deleted tasks are left out). A past-the-end page (404)
        ends the listing.
        """
        params: dict[str, Any] = {"project": project_id, "page_size": page_size, "fields": "all"}
        if not full:
            params["include"] = _LIGHT_FIELDS
        query: dict[str, Any] = {}
        if updated_after:
            items = [
                {
                    "filter": "filter:tasks:updated_at",
                    "operator": "greater",
                    "type": "Datetime",
                    "value": updated_after,
                }
            ]
            query["filters"] = {"conjunction": "and", "items": items}
        if ids is not None:
            if not ids:
                return
            query["selectedItems"] = {"all": False, "included": [int(i) for i in ids]}
        if query:
            params["query"] = json.dumps(query, separators=(",", ":"))
        page, seen = 1, 0
        while True:
            answer = self.request("GET", "/api/tasks", params={**params, "page": page}, allow_404=True)
            if answer.status_code == 404:
                return
            body = _json(answer)
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            for raw in tasks:
                yield Task.from_json(raw)
            seen += len(tasks)
            total = body.get("total") if isinstance(body, dict) else None
            if not tasks or len(tasks) < page_size or (total is not None and seen >= total):
                return
            page += 1

    def task_versions(self, project_id: int, task_ids: Sequence[int]) -> dict[int, frozenset[str]]:
        """The prediction model versions of just these tasks, in one request (a chunk's state)."""
        listing = self.iter_tasks(project_id, ids=task_ids, page_size=max(len(task_ids), 1))
        return {task.id: task.model_versions for task in listing}

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create tasks from JSON (``{"data": {...}}`` items); returns their ids in order."""
        if not tasks:
            return []
        answer = self.request_json(
            "POST", f"/api/projects/{project_id}/import", params={"return_task_ids": "true"}, json=list(tasks)
        )
        return [int(i) for i in answer.get("task_ids", [])]

    def upload_files(self, project_id: int, paths: Sequence[Path], *, commit: bool = True) -> list[int]:
        """Upload local image files; Label Studio stores them under /data/upload/ (renamed).

        Returns the new tasks' ids; with ``commit=False`` no task is made and the answer is
        the file uploads' ids, in order (``file_upload_refs`` turns them into task data).
        Under the retry policy like any POST: sent again only when it never left (httpx
        rewinds the files); after sending, a failure raises ``AmbiguousWriteError``.
        """
        if not paths:
            return []
        handles = [path.open("rb") for path in paths]
        try:
            # One field name per file: Label Studio keeps only the last file of a repeated name.
            # NFC: its sanitising drops the combining marks of a decomposed name (macOS's café).
            files = [
                (f"file{i}", (unicodedata.normalize("NFC", path.name), handle, "application/octet-stream"))
                for i, (path, handle) in enumerate(zip(paths, handles, strict=True))
            ]
            answer = self.request_json(
                "POST",
                f"/api/projects/{project_id}/import",
                params={"return_task_ids": "true", "commit_to_project": str(commit).lower()},
                files=files,
            )
        finally:
            for handle in handles:
                handle.close()
        return [int(i) for i in answer.get("task_ids" if commit else "file_upload_ids", [])]

    def file_upload_refs(self, project_id: int, upload_ids: Sequence[int]) -> list[str]:
        """The task data references (``/data/upload/...``) of these file uploads, in order."""
        ids = [int(i) for i in upload_ids]
        answer = self.request_json(
            "GET", f"/api/projects/{project_id}/file-uploads", params={"ids": json.dumps(ids)}
        )
        files = {int(f["id"]): str(f["file"]) for f in answer}
        missing = [i for i in ids if i not in files]
        if missing:
            raise LabelStudioError(
                "GET",
                f"{self.url}/api/projects/{project_id}/file-uploads",
                200,
                f"file uploads {missing} not listed",
            )
        return ["/data/" + files[i].lstrip("/") for i in ids]

    # -- predictions and annotations -----------------------------------------------------

    def import_predictions(self, project_id: int, predictions: Sequence[Mapping[str, Any]]) -> int:
        """Bulk-create predictions (each with ``task``, ``result``, ``model_version``)."""
        if not predictions:
            return 0
        answer = self.request_json(
            "POST", f"/api/projects/{project_id}/import/predictions", json=list(predictions)
        )
        return int(answer.get("created", 0))

    def create_prediction(self, prediction: Mapping[str, Any]) -> int:
        """Create one prediction (the one-request-per-task way; kept for comparison)."""
        return int(self.request_json("POST", "/api/predictions/", json=dict(prediction))["id"])

    def task_predictions(self, task_id: int) -> list[dict[str, Any]]:
        """All predictions of one task."""
        answer = self.request_json("GET", "/api/predictions/", params={"task": task_id})
        return list(answer if isinstance(answer, list) else answer.get("results", []))

    def update_prediction(self, prediction_id: int, fields: Mapping[str, Any]) -> None:
        """Change a prediction in place (``result``, ``score``): its id stays. Sending it twice
        changes nothing more, so the retry policy may repeat it."""
        self.request("PATCH", f"/api/predictions/{prediction_id}/", json=dict(fields), idempotent=True)

    def delete_prediction(self, prediction_id: int) -> None:
        self.request("DELETE", f"/api/predictions/{prediction_id}/", allow_404=True)

    def delete_model_version(self, project_id: int, model_version: str) -> int:
        """Delete every prediction of ``model_version`` in a project; returns the count."""
        answer = self.request_json(
            "DELETE", f"/api/projects/{project_id}/model-versions/", json={"model_version": model_version}
        )
        if isinstance(answer, dict):  # 1.23 answers {"deleted_predictions": n}
            answer = answer.get("deleted_predictions", answer.get("count"))
        return int(answer or 0)

    def delete_task_predictions(self, project_id: int, task_ids: Sequence[int]) -> int:
        """Delete every prediction (all versions) of these tasks in one request; returns the count.

        The data manager's ``delete_tasks_predictions`` action. Repeating it deletes nothing
        more, so the retry policy may send it again.
        """
        if not task_ids:
            return 0
        answer = self.request_json(
            "POST",
            "/api/dm/actions",
            params={"id": "delete_tasks_predictions", "project": project_id},
            json={"selectedItems": {"all": False, "included": [int(i) for i in task_ids]}},
            idempotent=True,
        )
        return int(answer.get("processed_items", 0)) if isinstance(answer, dict) else 0

    def model_versions(self, project_id: int) -> dict[str, int]:
        """Model versions with predictions in a project, and how many each has."""
        answer = self.request_json("GET", f"/api/projects/{project_id}/model-versions/")
        return {str(k): int(v) for k, v in dict(answer).items()}

    def create_annotation(
        self, task_id: int, result: Sequence[Mapping[str, Any]], **extra: Any
    ) -> dict[str, Any]:
        """Create an annotation on a task (tests and migrations use it)."""
        body = {"result": list(result), **extra}
        return dict(self.request_json("POST", f"/api/tasks/{task_id}/annotations/", json=body))

    def update_annotation(self, annotation_id: int, fields: Mapping[str, Any]) -> None:
        """Change an annotation in place (``result``); repeating it changes nothing more."""
        self.request("PATCH", f"/api/annotations/{annotation_id}/", json=dict(fields), idempotent=True)

    def delete_annotation(self, annotation_id: int) -> None:
        self.request("DELETE", f"/api/annotations/{annotation_id}/", allow_404=True)

    # -- transport ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        allow_404: bool = False,
        retry: bool = True,
        idempotent: bool | None = None,
        auth: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One API call with auth (unless ``auth`` is False), the retry policy
        (``prelabel.core.retry``), and clear errors.

        A POST that fails after it was sent raises ``AmbiguousWriteError`` (not repeated).
        """
        policy = self.policy if retry else dataclasses.replace(self.policy, retries=0)

        def send() -> httpx.Response:
            answer = self._send(method, path, auth, **kwargs)
            if answer.status_code in TRANSIENT_STATUS:
                raise TransientStatusError(answer)
            return answer

        try:
            answer = policy.call(method, self.url + path, send, idempotent=idempotent)
        except TransientStatusError as exc:
            answer = exc.response
            raise LabelStudioUnavailableError(
                method, str(answer.request.url), answer.status_code, _excerpt(answer)
            ) from exc
        except httpx.TransportError as exc:
            raise LabelStudioUnavailableError(
                method, self.url + path, None, f"{type(exc).__name__}: {exc}"
            ) from exc
        if answer.status_code == 404 and allow_404:
            return answer
        if answer.status_code >= 400:
            raise LabelStudioError(method, str(answer.request.url), answer.status_code, _excerpt(answer))
        return answer

    def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request``'s answer as JSON; an answer that is not JSON raises ``NotLabelStudioError``."""
        return _json(self.request(method, path, **kwargs))

    def _send(self, method: str, path: str, auth: bool, **kwargs: Any) -> httpx.Response:
        if not auth:
            return self._http.request(method, path, **kwargs)
        answer = self._http.request(method, path, headers=self._auth(), **kwargs)
        if answer.status_code == 401 and self._personal:
            self._access = None  # the access token expired: exchange the refresh token again
            answer = self._http.request(method, path, headers=self._auth(), **kwargs)
        return answer

    def _auth(self) -> dict[str, str]:
        if not self._personal:
            return {"Authorization": f"Token {self._key.get_secret_value()}"}
        if self._access is None:  # minting an access token changes nothing: safe to repeat
            path = "/api/token/refresh/"
            try:
                answer = self.request_json(
                    "POST", path, auth=False, idempotent=True, json={"refresh": self._key.get_secret_value()}
                )
            except LabelStudioError as exc:
                if exc.status not in (400, 401, 403):  # unavailable, or not Label Studio: as it is
                    raise
                raise LabelStudioError(
                    "POST", exc.url, exc.status, "personal access token refused: " + exc.detail
                ) from exc
            access = answer.get("access") if isinstance(answer, dict) else None
            if not isinstance(access, str):
                raise NotLabelStudioError("POST", self.url + path, 200, "JSON without an access token")
            self._access = access
        return {"Authorization": f"Bearer {self._access}"}


def _json(answer: httpx.Response) -> Any:
    """The answer's JSON body; any other body raises ``NotLabelStudioError`` saying what it was."""
    try:
        return answer.json()
    except ValueError as exc:
        found = _found(answer)
        raise NotLabelStudioError(
            answer.request.method, str(answer.request.url), answer.status_code, found
        ) from exc


def _found(answer: httpx.Response) -> str:
    """What a body that is not JSON is, as a user would name it: an HTML page, an empty body..."""
    kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    start = answer.content[:200].lstrip().lower()
    if "html" in kind or start.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if not start:
        return "an empty body"
    return f"a {kind} body, not JSON" if kind else "a body that is not JSON"


def _excerpt(answer: httpx.Response, limit: int = 500) -> str:
    """Label Studio's own message: validation errors or detail, else the start of the body."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:limit]
    if isinstance(body, dict):
        detail = body.get("validation_errors") or body.get("detail") or body
        if isinstance(detail, dict) and detail and all(isinstance(v, list) for v in detail.values()):
            # A validation answer, {field: [message, ...]}: its messages, "field: " before each but
            # the request-wide ones (a bulk prediction import lists "Prediction 3: ..." there).
            detail = "; ".join(
                str(m) if k == "non_field_errors" else f"{k}: {m}" for k, v in detail.items() for m in v
            )
        return json.dumps(detail)[:limit] if not isinstance(detail, str) else detail[:limit]
    return json.dumps(body)[:limit]


def _project(data: Mapping[str, Any]) -> Project:
    xml = str(data.get("label_config") or "")
    return Project(
        id=int(data["id"]),
        title=str(data.get("title", "")),
        label_config_xml=xml,
        config=parse_label_config(xml),
        model_version=str(data.get("model_version") or ""),
    )
