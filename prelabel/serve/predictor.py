"""Predictions for the tasks of one request, within a time budget, through the same cache as ``run``.

Per request, a part of the tasks at a time (``_FETCH_CHUNK`` images): their images are read
(only the configured Label Studio's files and ``s3://`` keys: ``prelabel.ingest.taskrefs``),
looked up in the prediction cache (a hit costs no model call), and the misses inferred together,
a model batch at a time, while the budget lasts; then the next part. What is left is *deferred*:
the caller hands it to a flow run. Reading a whole selection first would spend a short budget on
reading alone (measured: 500 images from a busy Label Studio took longer than 5 s). Each batch's
time per image is kept (an exponential average), so the next request knows how many images still
fit. An upload read before is not read again (``_known_hits``): reading it from a busy Label
Studio was most of a cached answer's time (45 of 50 ms). Conversions are ``run``'s
(``build_prediction``), and so is the model version (``default_model_version``), so a task
predicted here and one posted by a flow run carry the same version and never both.

One adapter per distinct set of options, created once and kept for the process's life: an
open-vocabulary model takes its classes from the project's labels (as ``run`` does), so a server
for several projects holds one per label set. Model calls are serialised by a lock (one model,
one device); cache hits never wait for it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prelabel.core.errors import PrelabelError, SourceError
from prelabel.core.images import ImageInfo, read_image_info
from prelabel.core.redact import redact
from prelabel.core.settings import Settings
from prelabel.ingest.fetch import Fetcher
from prelabel.ingest.taskrefs import label_studio_upload, trusted_task_image_uri
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.labelmap import LabelMap, Normalization
from prelabel.labelstudio.predictions import build_prediction
from prelabel.predict.batches import (
    InferResult,
    adapter_options,
    chunks,
    default_model_version,
    infer_read,
    look_up,
    project_prompt,
)
from prelabel.predict.models import ModelAdapter, create_model
from prelabel.predict.models.base import ImageItem, decode_batch
from prelabel.records import Detections, PredictionRecord
from prelabel.serve.protocol import TaskIn
from prelabel.serve.settings import ServeSettings
from prelabel.store.cache import PredictionCache
from prelabel.store.uris import name_of

__all__ = ["Answer", "Models", "Predictor", "ServedModel"]

log = logging.getLogger("prelabel.serve")

_FETCH_CHUNK = 64  # images read at once; the budget is checked between chunks
_SMOOTHING = 0.3  # weight of the newest batch in the seconds-per-image average
_KNOWN_UPLOADS = 100_000  # uploads whose image (hash, size) is remembered: about 30 MB


@dataclass(frozen=True)
class ServedModel:
    """The adapter serving one project's labels, its options (as a flow run gets them) and version."""

    adapter: ModelAdapter
    options: dict[str, Any]
    version: str


class Models:
    """The served model per project prompt, each created once (weights load once, lazily)."""

    def __init__(self, settings: ServeSettings, infer_batch_size: int) -> None:
        self.name, self.options = settings.model, dict(settings.model_options)
        self.label_map = LabelMap(dict(settings.label_map), Normalization(plurals=settings.plurals))
        self.batch_size = infer_batch_size
        self._made: dict[str, ServedModel] = {}
        self._lock = threading.Lock()

    def for_config(self, config: LabelConfig) -> ServedModel:
        """The model for a project with this labeling config (its labels fill the prompt)."""
        options = project_prompt(
            self.name,
            self.options,
            config.region_labels,
            self.label_map,
            config.image_choices,
            config.region_choices,
        )
        key = json.dumps(options, sort_keys=True, default=str)
        with self._lock:
            if key not in self._made:
                adapter = create_model(self.name, **adapter_options(self.name, options, self.batch_size))
                version = default_model_version(self.name, adapter.signature())
                self._made[key] = ServedModel(adapter, options, version)
            return self._made[key]

    def versions(self) -> list[str]:
        """The model versions served so far (one per label set)."""
        with self._lock:
            return sorted({m.version for m in self._made.values()})


@dataclass
class Answer:
    """What one request got: predictions by task id, and the tasks left without one now:
    ``deferred`` (past the budget: for a flow run) and ``failed`` (task id -> why)."""

    predictions: dict[int, dict[str, Any]] = field(default_factory=dict)
    deferred: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    cached: int = 0
    inferred: int = 0


class Predictor:
    """Predicts tasks of a project within a budget; see the module docstring."""

    def __init__(
        self,
        models: Models,
        cache: PredictionCache | None,
        settings: Settings,
        label_studio: LabelStudioClient,
    ) -> None:
        self.models, self.cache, self.settings = models, cache, settings
        self.fetcher = Fetcher(settings, label_studio=label_studio)  # one client for the process's life
        self.model_lock = threading.Lock()
        self._per_image: float | None = None  # seconds per image inferred, averaged
        self._uploads: OrderedDict[str, ImageInfo] = OrderedDict()  # upload URI -> its image, newest last

    def image_uri(self, project: Project, task: TaskIn) -> str:
        """The task's image as a URI prelabel reads; ``UntrustedSourceError`` for anything else,
        ``SourceError`` when the task has none."""
        key = project.config.image.data_key
        ref = task.data.get(key)
        if not isinstance(ref, str) or not ref:
            raise SourceError(f"task {task.id} has no image under ${key}")
        return trusted_task_image_uri(ref, self.settings.ls_url)

    def answer(self, project: Project, tasks: Sequence[TaskIn], budget: float) -> Answer:
        """Predictions of ``tasks`` made within ``budget`` seconds (see the module docstring).

        Every image reference is checked before anything is read: one that prelabel will not
        read refuses the whole request (``UntrustedSourceError``)."""
        deadline = time.monotonic() + budget
        answer, uris = Answer(), {}
        for task in tasks:
            try:
                uris[task.id] = self.image_uri(project, task)
            except SourceError as exc:
                if type(exc) is not SourceError:  # untrusted: refuse the request
                    raise
                answer.failed[task.id] = str(exc)
        served = self.models.for_config(project.config)
        records: dict[str, PredictionRecord] = {}
        unread: dict[str, str] = {}
        attempted: set[str] = set()
        model_errors: dict[str, str] = {}
        for part in chunks(list(dict.fromkeys(uris.values())), _FETCH_CHUNK):
            if time.monotonic() >= deadline:
                break
            known = self._known_hits(part, served.adapter)
            records |= known
            answer.cached += len(known)
            items, problems = self.read([uri for uri in part if uri not in known])
            unread |= problems
            batch = look_up(list(items.values()), served.adapter, self.cache)
            records |= {r.uri: r for r in batch.found.records}
            answer.cached += len(batch.found.records)
            inferred, late = self.infer(served.adapter, batch.misses, deadline)
            records |= {r.uri: r for r in inferred.records}
            answer.inferred += inferred.inferred
            model_errors |= {row.file: row.error for row in inferred.errors}  # rows name the URI redacted
            attempted |= {item.uri for item in batch.misses} - {item.uri for item in late}
        for task_id, uri in uris.items():
            if uri in records:
                self._build(answer, task_id, records[uri], project.config, served.version)
            elif uri in unread:
                answer.failed[task_id] = unread[uri]
            elif uri in attempted:
                answer.failed[task_id] = model_errors.get(redact(uri), "the model failed on the image")
            else:  # not reached within the budget
                answer.deferred.append(task_id)
        return answer

    def read(self, uris: Sequence[str]) -> tuple[dict[str, ImageItem], dict[str, str]]:
        """The images read (and hashed), and why the others could not be."""
        items: dict[str, ImageItem] = {}
        problems: dict[str, str] = {}
        max_pixels = self.settings.max_image_pixels
        for uri, data in self.fetcher.fetch_all(uris).items():
            try:
                if isinstance(data, SourceError):
                    raise data
                info = read_image_info(data, name_of(uri), max_pixels)
            except PrelabelError as exc:
                problems[uri] = str(exc)
                continue
            items[uri] = ImageItem(uri=uri, data=data, info=info, max_pixels=max_pixels)
            if label_studio_upload(uri, self.settings.ls_url):
                self._uploads[uri] = info
                self._uploads.move_to_end(uri)
                while len(self._uploads) > _KNOWN_UPLOADS:
                    self._uploads.popitem(last=False)
        return items, problems

    def _known_hits(self, uris: Sequence[str], adapter: ModelAdapter) -> dict[str, PredictionRecord]:
        """The cache's records of the uploads among ``uris`` read before: an upload never changes
        (Label Studio gives each one a name of its own), so its hash needs no second read."""
        if self.cache is None:
            return {}
        signature, hits = adapter.signature(), {}
        for uri in uris:
            info = self._uploads.get(uri)
            found = None if info is None else self.cache.get(info.sha256, signature)
            if info is not None and found is not None:
                hits[uri] = PredictionRecord(info, found, signature, uri=uri)
        return hits

    def infer(
        self, adapter: ModelAdapter, misses: Sequence[ImageItem], deadline: float
    ) -> tuple[InferResult, list[ImageItem]]:
        """The model over ``misses`` a batch at a time while the next batch fits before
        ``deadline`` (by the average so far; without one yet, while any time is left); the result
        and the images left."""
        result = InferResult()
        parts = iter(chunks(list(misses), self.models.batch_size))
        left: list[ImageItem] = []
        for part in parts:
            remaining = deadline - time.monotonic()
            expected = 0.0 if self._per_image is None else self._per_image * len(part)
            if remaining <= 0 or expected > remaining:
                left = [*part, *(item for rest in parts for item in rest)]
                break
            started = time.monotonic()
            done = self.infer_now(adapter, part)
            self._learn((time.monotonic() - started) / max(1, len(part)))
            result.records += done.records
            result.errors += done.errors
            result.inferred += done.inferred
            result.cached += done.cached
        return result, left

    def infer_now(self, adapter: ModelAdapter, items: Sequence[ImageItem]) -> InferResult:
        """The model over ``items`` now, under the model lock (decoded first, outside it)."""
        batch = look_up(items, adapter, None, refresh=True)
        if adapter.decodes_pixels:
            decode_batch(batch.misses)
        with self.model_lock:
            return infer_read(batch, adapter, self.cache)

    def detections(self, served: ServedModel, item: ImageItem) -> Detections:
        """One image's detections by the served model: from the cache, else inferred now."""
        found = look_up([item], served.adapter, self.cache)
        result = found.found if not found.misses else self.infer_now(served.adapter, found.misses)
        if result.errors:
            raise PrelabelError(result.errors[0].error)
        return result.records[0].detections

    def _learn(self, seconds: float) -> None:
        previous = self._per_image
        self._per_image = seconds if previous is None else previous + _SMOOTHING * (seconds - previous)

    def _build(
        self, answer: Answer, task_id: int, record: PredictionRecord, config: LabelConfig, version: str
    ) -> None:
        try:
            prediction, _ = build_prediction(record, config, self.models.label_map, version)
        except PrelabelError as exc:
            answer.failed[task_id] = str(exc)
            return
        answer.predictions[task_id] = prediction
