"""DINO-X (and its sister endpoints) through the cloud V2 task protocol, on httpx.

prelabel speaks the protocol itself rather than importing ``dds-cloudapi-sdk``, which
starts a third-party error tracker at import and tags its events with the API token.

Per image: ``POST {base}/v2/task/<endpoint>/detection`` (``Token`` and a stable
``Idempotency-Key`` header) -> ``task_uuid``; ``GET {base}/v2/task_status/<uuid>`` until
``success`` or ``failed`` or the deadline. The image goes as a data URI of the displayed
pixels (EXIF applied), downscaled when its longer side exceeds ``max_side``; boxes, masks and
points come back on the displayed grid (float scaling, masks resized by nearest neighbour;
a mask on another grid than the sent image's is that image's error, never stretched).
Transient trouble (API code 202001, HTTP 429/5xx, timeouts, dropped connections, malformed
answers) is retried with bounded exponential backoff; a refused token stops the batch; a
failed task is that image's error. Requests run concurrently up to ``concurrency`` and
start at most ``rate`` per second.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import io
import json
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import httpx
import numpy as np
from PIL import Image
from pydantic import SecretStr

from prelabel.convert.masks import coco_size, coco_to_mask, mask_to_coco
from prelabel.core.errors import (
    DinoxAuthError,
    DinoxError,
    ImageError,
    MaskError,
    PrelabelError,
    SettingsError,
)
from prelabel.core.retry import TRANSIENT_STATUS, RetryPolicy, TransientStatusError
from prelabel.predict.models.base import ImageItem, ModelAdapter, class_list
from prelabel.predict.models.registry import register
from prelabel.records import Detections, ModelSignature, detections_from_raw

__all__ = ["ENDPOINTS", "DinoX"]

ENDPOINTS = {
    "dinox": ("dinox", "DINO-X-1.0"),
    "grounding-dino-pro": ("grounding_dino", "GroundingDino-1.6-Pro"),
    "dino-xseek": ("dino_xseek", "DINO-XSeek-1.0"),
    "trex": ("trex", "T-Rex-2.0"),  # visual prompts: prelabel.predict.models.trex
}
_RETRY_CODE = 202001
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class _RateLimit:
    """At most ``rate`` request starts per second across threads."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        if start > now:
            time.sleep(start - now)


@register("dinox")
class DinoX(ModelAdapter):
    """A DINO-X-protocol detector: universal prompt, or text prompt of given classes."""

    task_types: ClassVar[tuple[str, ...]] = ("detection", "instance-segmentation")
    needs: ClassVar[str] = "a DINO-X API token (PRELABEL_DINOX_TOKEN); no GPU: the model runs in the cloud"

    def __init__(
        self,
        classes: Sequence[str] | str | None = None,
        targets: Sequence[str] = ("bbox", "mask"),
        bbox_threshold: float = 0.25,
        iou_threshold: float = 0.8,
        endpoint: str = "dinox",
        model_name: str | None = None,
        max_side: int = 2048,
        concurrency: int = 4,
        rate: float = 5.0,
        poll_interval: float = 1.0,
        deadline: float = 180.0,
        retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 60.0,
        token: SecretStr | str | None = None,
        base_url: str | None = None,
    ) -> None:
        if endpoint not in ENDPOINTS:
            raise SettingsError(f"unknown DINO-X endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
        self.classes = class_list(classes)
        self.targets = list(targets)
        self.bbox_threshold, self.iou_threshold = bbox_threshold, iou_threshold
        self.path, default_model = ENDPOINTS[endpoint]
        self.endpoint = endpoint
        self.model_name = model_name or default_model
        self.max_side, self.concurrency, self.rate = max_side, max(1, concurrency), rate
        self.poll_interval, self.deadline = poll_interval, deadline
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self._policy = RetryPolicy(retries=retries, backoff=backoff, deadline=deadline)
        self._token = token if isinstance(token, SecretStr) or token is None else SecretStr(token)
        self._base_url = base_url
        if base_url is not None and self._token is None:
            from prelabel.core.settings import load_settings

            configured = load_settings().dinox_base_url
            if base_url.rstrip("/") != configured:
                raise SettingsError(
                    f"base_url {base_url} is not the configured DINO-X API ({configured}): the token from "
                    "PRELABEL_DINOX_TOKEN goes only there; set PRELABEL_DINOX_BASE_URL instead"
                )
        self._http: httpx.Client | None = None
        self._limit = _RateLimit(rate)

    def signature(self) -> ModelSignature:
        params = {
            "prompt": self._prompt(),
            "targets": self.targets,
            "bbox_threshold": self.bbox_threshold,
            "iou_threshold": self.iou_threshold,
            "mask_format": "coco_rle",
            "max_side": self.max_side,
        }
        return ModelSignature(f"dinox-api/{self.endpoint}", self.model_name, params)

    def _prompt(self) -> dict[str, Any]:
        if not self.classes:
            return {"type": "universal"}
        return {"type": "text", "text": ".".join(self.classes)}

    def _client(self) -> httpx.Client:
        if self._http is None:
            from prelabel.core.settings import load_settings

            settings = load_settings()
            base = (self._base_url or settings.dinox_base_url).rstrip("/")
            token = self._token or settings.dinox_token
            if token is None or not token.get_secret_value():
                raise SettingsError("the dinox model needs a token: set PRELABEL_DINOX_TOKEN")
            self._token = token
            self._http = httpx.Client(base_url=base, timeout=self.timeout)
        return self._http

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        client = self._client()
        settings_key = self.signature().key  # once per batch, not per image
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            # Each call runs in a copy of this thread's context: its log lines keep their run.
            jobs = [
                pool.submit(contextvars.copy_context().run, self._one, client, item, settings_key)
                for item in batch
            ]
            outcomes = [job.result() for job in jobs]
        fatal = next((o for o in outcomes if isinstance(o, DinoxAuthError)), None)
        if fatal is not None:
            raise fatal
        return outcomes

    def _one(self, client: httpx.Client, item: ImageItem, settings_key: str) -> Detections | PrelabelError:
        try:
            image = item.load().rgb
            payload, scale = self._image_payload(image)
            key = hashlib.sha256(f"{item.info.sha256}:{settings_key}".encode()).hexdigest()
            answer = self._call(
                client,
                "POST",
                f"/v2/task/{self.path}/detection",
                item.uri,
                json=self._body(payload),
                headers={"Idempotency-Key": key},
            )
            uuid = answer.get("task_uuid")
            if not isinstance(uuid, str) or not _TASK_ID.fullmatch(uuid):  # it goes into the poll's path
                raise DinoxError(
                    f"{item.uri}: DINO-X created a task without a usable task_uuid: {str(answer)[:100]}"
                )
            result = self._wait(client, uuid, item.uri)
            return self._to_display(self._detections(result, item.uri), scale, image.size)
        except (ImageError, DinoxError) as exc:
            return exc
        except PrelabelError as exc:
            return DinoxError(f"{item.uri}: {exc}")

    def _body(self, image: str) -> dict[str, Any]:
        """The create request's JSON body for one image (a data URI)."""
        return {
            "model": self.model_name,
            "image": image,
            "prompt": self._prompt(),
            "targets": self.targets,
            "bbox_threshold": self.bbox_threshold,
            "iou_threshold": self.iou_threshold,
            "mask_format": "coco_rle",
        }

    def _detections(self, result: Any, uri: str) -> Detections:
        """A finished task's ``result`` as detections on the sent image's grid."""
        return detections_from_raw(result, uri)

    def _image_payload(self, image: Image.Image) -> tuple[str, float]:
        """A JPEG data URI of the displayed pixels, downscaled to ``max_side``; and the scale."""
        scale = min(1.0, self.max_side / max(image.size))
        if scale < 1.0:
            image = image.resize(_sent_size(image.size, scale), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=95)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode(), scale

    def _to_display(self, found: Detections, scale: float, size: tuple[int, int]) -> Detections:
        """Boxes, masks and any points (polygons, keypoints) from the sent image's grid back
        onto the displayed one. A mask on another grid than the sent image's is an error: the
        answer's boxes could not be placed either (it was stretched onto the image)."""
        width, height = size
        sent_width, sent_height = _sent_size(size, scale)
        for mask in found.masks:
            if mask is not None and coco_size(mask) != (sent_height, sent_width):
                got_height, got_width = coco_size(mask)
                raise MaskError(
                    f"DINO-X answered a {got_width}x{got_height} mask for the image sent at "
                    f"{sent_width}x{sent_height} (width x height)"
                )
        if scale == 1.0:
            return found
        masks = list(found.masks)
        for i, mask in enumerate(masks):
            if mask is not None:
                small = coco_to_mask(mask)
                rows = np.minimum((np.arange(height) + 0.5) * small.shape[0] / height, small.shape[0] - 1)
                cols = np.minimum((np.arange(width) + 0.5) * small.shape[1] / width, small.shape[1] - 1)
                masks[i] = mask_to_coco(small[rows.astype(int)][:, cols.astype(int)])
        polygons = tuple(
            None if p is None else tuple((x / scale, y / scale) for x, y in p) for p in found.polygons
        )
        keypoints = tuple(
            None if k is None else tuple(q._replace(x=q.x / scale, y=q.y / scale) for q in k)
            for k in found.keypoints
        )
        return found.replace(
            xyxy=found.xyxy / scale, masks=tuple(masks), polygons=polygons, keypoints=keypoints
        )

    def _wait(self, client: httpx.Client, uuid: str, uri: str) -> Any:
        deadline = time.monotonic() + self.deadline
        while True:
            data = self._call(client, "GET", f"/v2/task_status/{uuid}", uri)
            status = data.get("status")
            if status == "success":
                return data.get("result") or {"objects": []}
            if status == "failed":
                raise DinoxError(
                    f"{uri}: DINO-X task {uuid} failed: {str(data.get('error') or 'no reason given')[:200]}"
                )
            if time.monotonic() + self.poll_interval > deadline:
                raise DinoxError(
                    f"{uri}: DINO-X task {uuid} not done after {self.deadline:.0f} s (status {status})"
                )
            time.sleep(self.poll_interval)

    def _call(self, client: httpx.Client, method: str, path: str, uri: str, **kwargs: Any) -> Any:
        """One API call under the retry policy; returns the answer's ``data``.

        Creating a task is safe to repeat: it carries an ``Idempotency-Key``.
        """
        headers = {
            "Token": self._token.get_secret_value() if self._token else "",
            **kwargs.pop("headers", {}),
        }
        tries = 0

        def send() -> Any:
            nonlocal tries
            tries += 1
            self._limit.wait()
            return self._answer(client.request(method, path, headers=headers, **kwargs))

        try:
            return self._policy.call(method, f"{client.base_url}{path}", send, idempotent=True)
        except (TransientStatusError, httpx.TransportError) as exc:
            raise DinoxError(f"{uri}: DINO-X {method} {path} failed after {tries} tries: {exc}") from exc

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code in {401, 403}:
            raise DinoxAuthError(f"DINO-X refused the token ({response.status_code}): {response.text[:200]}")
        if response.status_code in TRANSIENT_STATUS:
            raise TransientStatusError(response)
        try:
            body = response.json()
        except (json.JSONDecodeError, ValueError) as exc:
            raise TransientStatusError(
                response, f"malformed answer (HTTP {response.status_code}): {response.text[:100]!r}"
            ) from exc
        if not isinstance(body, dict):
            raise TransientStatusError(response, f"malformed answer: {str(body)[:100]}")
        code = body.get("code", 0 if response.status_code < 400 else response.status_code)
        if code == _RETRY_CODE:
            raise TransientStatusError(response, f"API busy (code {code})")
        if code in {401, 403} or (code != 0 and "token" in str(body.get("msg", "")).lower()):
            raise DinoxAuthError(
                f"DINO-X refused the token: code {str(code)[:20]}, {str(body.get('msg'))[:200]}"
            )
        if code != 0 or response.status_code >= 400:
            raise DinoxError(f"DINO-X error code {str(code)[:20]}: {str(body.get('msg'))[:200]}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise TransientStatusError(response, f"answer without data: {str(body)[:100]}")
        return data


def _sent_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """The (width, height) an image of displayed ``size`` is sent at, downscaled by ``scale``."""
    if scale == 1.0:
        return size
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _register_sister(name: str) -> None:
    """The same client on a sister endpoint, as its own model name (e.g. ``--model trex``)."""

    class Sister(DinoX):
        def __init__(self, **options: Any) -> None:
            options.setdefault("endpoint", name)
            super().__init__(**options)

    Sister.__name__ = Sister.__qualname__ = f"DinoX_{name.replace('-', '_')}"
    register(name)(Sister)


for _sister in ENDPOINTS:
    if _sister not in {"dinox", "trex"}:
        _register_sister(_sister)
