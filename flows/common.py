"""What the flows share: settings and secrets resolved once per run, quoting, batch inference."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from prefect.utilities.annotations import quote
from pydantic import BaseModel, SecretStr

from flows.params import LabelStudioParams, _ModelSettings, _PostOptions
from prelabel.labelstudio.labelmap import LabelMap, Normalization, load_label_map
from prelabel.pipeline import InferResult, chunks
from prelabel.settings import Settings, load_settings
from prelabel.store.cache import PredictionCache, open_cache
from tasks.common import LabelStudioConnection
from tasks.inference import infer_batch

__all__ = ["RunSizes", "connection", "infer_in_batches", "label_map", "opaque", "prediction_cache"]

T = TypeVar("T")


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


def label_map(params: _PostOptions) -> LabelMap:
    """The label map: the file's entries, overridden by the inline ones."""
    normalization = Normalization(plurals=params.plurals)
    base = load_label_map(Path(params.label_map_file), normalization).mapping if params.label_map_file else {}
    return LabelMap({**base, **params.label_map}, normalization)


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


def infer_in_batches(
    params: _ModelSettings, images: Sequence[str], cache: PredictionCache, sizes: RunSizes
) -> Iterator[InferResult]:
    """The model over ``images`` through the cache: one ``infer-batch`` task run per batch."""
    for batch in chunks(images, sizes.task_batch):
        yield infer_batch(opaque(batch), params.model, params.model_options, cache, params.refresh,
                          sizes.max_pixels)  # fmt: skip
