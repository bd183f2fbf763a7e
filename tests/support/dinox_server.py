"""A local server that speaks the DINO-X V2 task protocol and injects faults on request.

It answers like the cloud API (create -> poll -> result, ``{"code", "data", "msg"}``
envelopes, COCO RLE masks on the grid of the image it was sent) so that the production
client is what the tests exercise. Faults are queued per request: ``429``, ``500``,
``busy`` (code 202001), ``malformed`` (not JSON), ``drop`` (connection closed without an
answer), ``slow`` (the task stays ``running`` for a few polls), ``failed`` (the task fails), ``lie``
(the next of ``lies`` sent as the answer, HTTP 200: a well-formed envelope of wrong content),
``pass`` (none: answered as usual).
On ``/v2/task/trex/detection`` it checks the visual-prompt body as T-Rex's own client
sends it (see ``prelabel.predict.models.trex``), refuses any other with code 400, and names its
object by the first box's ``category_id``.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np
from PIL import Image

from prelabel.convert.masks import mask_to_coco
from tests.support.loopback import LoopbackServer

TOKEN = "test-dinox-token"


@dataclass
class DinoxState:
    """What the server was asked and what it will do next."""

    faults: deque[str] = field(default_factory=deque)
    every: int = 0  # inject a transient fault into every n-th fresh request (0: never)
    cycle: tuple[str, ...] = ("429", "500", "busy", "malformed", "drop")
    lies: deque[dict[str, Any]] = field(default_factory=deque)  # answers the ``lie`` faults send
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    fresh: int = 0  # requests that were not the retry of a request ``every`` faulted
    faulted: set[str] = field(default_factory=set)  # requests ``every`` faulted, not yet retried
    served: list[str] = field(default_factory=list)  # the faults acted on, in order (not ``pass``)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    bodies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, body) of each create
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self, request: str) -> str | None:
        """The fault for ``request`` (its idempotency key or path). ``every`` never faults a
        request's retry: with threads in step, counting retries could fault one request on
        each of its tries and exhaust them, which is not the transient fault meant."""
        with self.lock:
            self.requests += 1
            if self.faults:
                return self.faults.popleft()
            if request in self.faulted:
                self.faulted.discard(request)
                return None
            self.fresh += 1
            if self.every and self.fresh % self.every == 0:
                self.faulted.add(request)
                return self.cycle[(self.fresh // self.every) % len(self.cycle)]
        return None


def _handler(state: DinoxState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _fault(self) -> bool:
            fault = state.next_fault(self.headers.get("Idempotency-Key") or self.path)
            if fault is not None and fault in {"429", "500", "busy", "malformed", "lie", "drop"}:
                with state.lock:
                    state.served.append(fault)
            if fault == "429":
                self._send(429, {"code": 429, "msg": "slow down"}, {"Retry-After": "0"})
            elif fault == "500":
                self._send(500, {"code": 500, "msg": "internal error"})
            elif fault == "busy":
                self._send(200, {"code": 202001, "msg": "server busy, retry"})
            elif fault == "malformed":
                self._send(200, b"<html>gateway hiccup</html>")
            elif fault == "lie":
                self._send(200, state.lies.popleft())
            elif fault == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
            else:
                if fault in {"slow", "failed"}:
                    state.faults.appendleft(fault)  # meant for task creation, not for this request
                return False
            return True

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.headers.get("Token") != TOKEN:
                self._send(401, {"code": 401, "msg": "invalid api token"})
                return
            if self._fault():
                return
            key = self.headers.get("Idempotency-Key", "")
            with state.lock:
                if key and key in state.keys:
                    self._send(200, {"code": 0, "data": {"task_uuid": state.keys[key]}, "msg": "ok"})
                    return
            problem = _trex_problem(body) if self.path.endswith("/trex/detection") else None
            if problem:
                self._send(400, {"code": 400, "msg": f"invalid request body: {problem}"})
                return
            header, _, encoded = body["image"].partition(",")
            image = Image.open(io.BytesIO(base64.b64decode(encoded)))
            task_id = str(uuid.uuid4())
            special = (
                state.faults.popleft() if state.faults and state.faults[0] in {"slow", "failed"} else None
            )
            prompt = body.get("prompt", {})
            with state.lock:
                if special:
                    state.served.append(special)
                state.bodies.append((self.path, body))
                state.sizes.append(image.size)
                state.keys[key] = task_id
                state.tasks[task_id] = {
                    "size": image.size,
                    "polls": 3 if special == "slow" else 0,
                    "failed": special == "failed",
                    "label": prompt["text"].split(".")[0] if prompt.get("type") == "text" else "car",
                    "mask": "mask" in body.get("targets", []),
                    "header": header,
                    "category_id": _first_category(body),
                }
            self._send(200, {"code": 0, "data": {"task_uuid": task_id}, "msg": "ok"})

        def do_GET(self) -> None:
            if self.headers.get("Token") != TOKEN:
                self._send(401, {"code": 401, "msg": "invalid api token"})
                return
            if self._fault():
                return
            task = state.tasks.get(self.path.rsplit("/", 1)[-1])
            if task is None:
                self._send(404, {"code": 404, "msg": "no such task"})
                return
            if task["polls"] > 0:
                task["polls"] -= 1
                self._send(200, {"code": 0, "data": {"status": "running"}, "msg": "ok"})
                return
            if task["failed"]:
                self._send(
                    200, {"code": 0, "data": {"status": "failed", "error": "model crashed"}, "msg": "ok"}
                )
                return
            width, height = task["size"]
            box = [0.1 * width, 0.2 * height, 0.6 * width, 0.7 * height]
            obj: dict[str, Any] = {"bbox": box, "score": 0.9, "category": task["label"]}
            if task["category_id"] is not None:  # T-Rex names categories by the prompt's ids
                obj = {"bbox": box, "score": 0.9, "category_id": task["category_id"]}
            if task["mask"]:
                mask = np.zeros((height, width), np.uint8)
                mask[round(box[1]) : round(box[3]), round(box[0]) : round(box[2])] = 1
                obj["mask"] = mask_to_coco(mask)
            result = {"status": "success", "result": {"objects": [obj]}}
            self._send(200, {"code": 0, "data": result, "msg": "ok"})

    return Handler


def _data_uri_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("data:image/") or ";base64," not in value:
        return f"image must be a data:image/...;base64 URI, got {str(value)[:40]!r}"
    try:
        Image.open(io.BytesIO(base64.b64decode(value.partition(",")[2]))).verify()
    except (OSError, ValueError) as exc:
        return f"image does not decode ({exc})"
    return None


def _trex_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with a T-Rex visual-prompt body, or None."""
    if set(body) != {"model", "image", "targets", "prompt"}:
        return f"keys must be model, image, targets, prompt; got {sorted(body)}"
    if body["model"] != "T-Rex-2.0" or body["targets"] != ["bbox"]:
        return f"model T-Rex-2.0 with targets ['bbox'] expected, got {body['model']!r} {body['targets']!r}"
    prompt = body["prompt"]
    if (
        not isinstance(prompt, dict)
        or set(prompt) != {"type", "visual_images"}
        or prompt["type"] != "visual_images"
    ):
        return f"prompt must be {{type: visual_images, visual_images: [...]}}, got {str(prompt)[:80]}"
    images = prompt["visual_images"]
    if not isinstance(images, list) or not images:
        return "visual_images must be a non-empty list"
    for i, item in enumerate(images):
        if not isinstance(item, dict) or set(item) != {"image", "interactions"}:
            return f"visual_images[{i}] must have image and interactions"
        problem = _data_uri_problem(item["image"])
        if problem:
            return f"visual_images[{i}].{problem}"
        rects = item["interactions"]
        if not isinstance(rects, list) or not rects:
            return f"visual_images[{i}].interactions must be a non-empty list"
        for rect in rects:
            ok = (
                isinstance(rect, dict)
                and set(rect) == {"type", "category_id", "rect"}
                and rect["type"] == "rect"
            )
            ok = ok and isinstance(rect["category_id"], int) and rect["category_id"] >= 1
            ok = ok and isinstance(rect["rect"], list) and len(rect["rect"]) == 4
            if not ok or not (rect["rect"][2] > rect["rect"][0] and rect["rect"][3] > rect["rect"][1]):
                return f"visual_images[{i}].interactions: bad rect {str(rect)[:80]}"
    return _data_uri_problem(body["image"])


def _first_category(body: dict[str, Any]) -> int | None:
    prompt = body.get("prompt", {})
    if prompt.get("type") != "visual_images":
        return None
    return int(prompt["visual_images"][0]["interactions"][0]["category_id"])


@contextmanager
def dinox_server() -> Iterator[tuple[str, DinoxState]]:
    """Run the server on a free loopback port; yields its base URL and its state."""
    state = DinoxState()
    server = LoopbackServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
