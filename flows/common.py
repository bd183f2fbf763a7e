"""What the flows share: settings and secrets resolved once per run, quoting, the overlapping batch loop."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from prefect.utilities.annotations import quote
from pydantic import BaseModel, SecretStr

from flows.params import ExportParams, ExportShardParams, LabelStudioParams, _ModelSettings, _PostOptions
from prelabel.core.settings import Settings, load_settings
from prelabel.export.batches import BatchExport, ExportPlan
from prelabel.ingest.fetch import Fetcher
from prelabel.labelstudio.config import LabelConfig
from prelabel.labelstudio.labelmap import (
    LabelMap,
    Normalization,
    checked_label_map,
    load_label_map,
    require_targets,
)
from prelabel.predict.batches import InferResult, ReadBatch, chunks, read_batch, reuse_earlier
from prelabel.predict.stages import overlapped
from prelabel.review.verifier import VerifyStep
from prelabel.store.cache import PredictionCache, open_cache
from tasks.common import LabelStudioConnection, as_task_retries
from tasks.exporting import export_batch
from tasks.inference import infer_batch, model_for

__all__ = [
    "Inferred",
    "RunSizes",
    "connection",
    "export_batches",
    "infer_in_batches",
    "inferred_batches",
    "label_map",
    "opaque",
    "prediction_cache",
]

T = TypeVar("T")
R = TypeVar("R")


def opaque(value: T) -> T:
    """``value`` wrapped in Prefect's ``quote``: the task receives it unwrapped, but Prefect
    does not walk it element by element looking for futures. Measured with
    benchmarks/orchestration.py (10,000 images, dry run): 60 s with plain arguments, 20 s
    with these."""
    return cast(T, quote(value))


def connection(params: LabelStudioParams) -> tuple[Settings, LabelStudioConnection]:
    """Settings from the environment; the key from a Secret block (for the parameter's URL, or
    the configured one), else the environment's key, which goes only to the environment's URL."""
    configured = load_settings()
    if params.api_key_block:
        from prefect.blocks.system import Secret

        block: Secret[str] = Secret.load(params.api_key_block)  # type: ignore[assignment]
        key = SecretStr(str(block.get()))
        settings = load_settings(ls_url=params.ls_url)
    else:
        key, settings = configured.ls_key_for(params.ls_url), configured
    return settings, LabelStudioConnection(settings.ls_url, key, settings.request_timeout)


def label_map(params: _PostOptions, config: LabelConfig | None = None) -> LabelMap:
    """The label map: the file's entries, overridden by the inline ones; with the project's
    ``config``, every target must be one of its labels."""
    normalization = Normalization(plurals=params.plurals)
    file = params.label_map_file
    base = load_label_map(Path(file), normalization).mapping if file else {}
    inline = checked_label_map(params.label_map, "the label_map parameter", normalization).mapping
    merged = LabelMap({**base, **inline}, normalization)
    if config is not None:
        source = " with ".join(filter(None, (file, "the label_map parameter" if inline else "")))
        require_targets(merged, config, source)
    return merged


def prediction_cache(params: _ModelSettings) -> PredictionCache:
    """The run's prediction cache: its ``cache_dir``, else the settings' (a folder or S3)."""
    settings = load_settings()
    return open_cache(params.cache_dir or settings.cache_dir, settings)


@dataclass(frozen=True)
class RunSizes:
    """A run's batch sizes and pixel limit: the parameter when given, else its ``PRELABEL_*``
    setting (whose field holds the one default)."""

    task_batch: int
    post_chunk: int
    max_pixels: int

    @classmethod
    def of(cls, params: BaseModel, settings: Settings | None = None) -> RunSizes:
        settings = settings or load_settings()

        def pick(name: str, default: int) -> int:
            value = getattr(params, name, None)
            return default if value is None else int(value)

        return cls(
            task_batch=pick("batch_size", settings.task_batch_size),
            post_chunk=pick("post_chunk_size", settings.post_batch_size),
            max_pixels=pick("max_image_pixels", settings.max_image_pixels),
        )


@dataclass(frozen=True)
class Inferred:
    """One batch after the model: its images (as listed), what was read, and the result."""

    uris: Sequence[str]
    read: ReadBatch
    result: InferResult


def inferred_batches(
    batches: Iterable[Sequence[str]],
    model: str,
    model_options: dict[str, Any],
    cache: PredictionCache | None,
    refresh: bool,
    max_pixels: int,
    finish: Callable[[Inferred], R],
    verify: VerifyStep | None = None,
) -> Iterator[R]:
    """``finish`` of each batch, in order, through ``prelabel.predict.stages``: the next batch is read,
    looked up and decoded in a thread while an ``infer-batch`` task run works on this one, and
    ``finish`` (convert and post, write) runs for the previous one on another thread."""
    adapter = model_for(model, model_options)
    fetcher = Fetcher(load_settings())

    def prepare(uris: Sequence[str]) -> tuple[Sequence[str], ReadBatch]:
        # Read outside the infer-batch task (ahead, in a thread), so retried here as it would be.
        read = as_task_retries(
            lambda: read_batch(uris, adapter, cache, refresh=refresh, max_pixels=max_pixels, fetcher=fetcher),
            f"reading a batch of {len(uris)} images",
        )
        return uris, read

    earlier = InferResult()  # the batch inferred while this one was read

    def work(prepared: tuple[Sequence[str], ReadBatch]) -> Inferred:
        nonlocal earlier
        uris, read = prepared
        if verify is None:  # a verified result holds what the verifier kept, not the model's output
            read = reuse_earlier(read, earlier, cache)
        # opaque(): Prefect would otherwise walk every element of these large arguments.
        earlier = infer_batch(opaque(read), model, model_options, cache, max_pixels, verify)
        return Inferred(uris, read, earlier)

    return overlapped(batches, prepare, work, finish)


def infer_in_batches(
    params: _ModelSettings,
    images: Sequence[str],
    cache: PredictionCache,
    sizes: RunSizes,
    finish: Callable[[Inferred], R],
) -> Iterator[R]:
    """The model over ``images`` through the cache, one ``infer-batch`` task run per batch,
    each batch's ``finish`` overlapping the next's inference."""
    return inferred_batches(
        chunks(images, sizes.task_batch),
        params.model,
        params.model_options,
        cache,
        params.refresh,
        sizes.max_pixels,
        finish,
    )


def export_batches(
    params: ExportParams | ExportShardParams,
    plan: ExportPlan,
    first: int,
    images: Sequence[str],
    cache: PredictionCache,
    max_pixels: int,
) -> Iterator[BatchExport]:
    """Each batch of ``images`` (numbered from ``first``) inferred, then exported by an
    ``export-batch`` task run while the next is inferred; the reports in order."""
    categories = plan.category_ids()  # grows in first-seen order unless the plan fixes them
    numbers = itertools.count(first)

    def export(batch: Inferred) -> BatchExport:
        nonlocal categories
        report, categories = export_batch(
            params.to,
            plan,
            next(numbers),
            opaque(batch.uris),
            opaque(batch.read),
            opaque(batch.result),
            categories,
        )
        return report

    return inferred_batches(
        chunks(images, plan.batch_size),
        params.model,
        params.model_options,
        cache,
        params.refresh,
        max_pixels,
        export,
    )
