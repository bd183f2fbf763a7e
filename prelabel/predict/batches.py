"""The pipeline's batch steps, free of Prefect: collect -> read (+ decode) -> infer (through the cache).

``tasks/`` wraps each step in a Prefect task working on a batch of images; these
functions hold the logic so that they can be used and tested alone. Per-image failures
come back as error rows (file, stage, error); only whole-batch failures raise.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prelabel.core.errors import DetectionError, MaskError, PrelabelError, SourceError
from prelabel.core.failures import ErrorRow, Stage, failure_row, item_failure
from prelabel.core.images import DEFAULT_MAX_PIXELS, ImageInfo, read_image_info
from prelabel.core.settings import Settings
from prelabel.ingest.fetch import Fetcher
from prelabel.ingest.manifest import read_manifest
from prelabel.ingest.sources import iter_image_files, no_images
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.models.base import ImageItem, ModelAdapter, decode_batch
from prelabel.predict.models.registry import model_option_names, model_parts, option_names
from prelabel.predict.models.sam3 import EXEMPLARS_FROM_PROJECT
from prelabel.predict.output import sane_detections
from prelabel.records import Detections, ModelSignature, PredictionRecord
from prelabel.store.cache import PredictionCache, cache_location, open_cache
from prelabel.store.uris import name_of

__all__ = [
    "InferResult",
    "ReadBatch",
    "adapter_options",
    "chunks",
    "collect_images",
    "default_model_version",
    "exemplar_options",
    "infer_items",
    "infer_read",
    "look_up",
    "manifest_task_data",
    "project_prompt",
    "read_batch",
    "read_items",
    "reuse_earlier",
    "run_cache",
    "run_version",
    "still_to_do",
    "with_tasks",
]

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class InferResult:
    """Records of one batch, its error rows, and where the predictions came from."""

    records: list[PredictionRecord] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    cached: int = 0
    inferred: int = 0
    model_counts: Counter[str] = field(default_factory=Counter)
    verified: Counter[str] = field(default_factory=Counter)  # "<label> kept|dropped|cached" (a verifier ran)


def read_items(
    uris: Iterable[str], max_pixels: int = DEFAULT_MAX_PIXELS, fetcher: Fetcher | None = None
) -> tuple[list[ImageItem], list[ErrorRow]]:
    """Fetch (local paths, ``s3://`` keys, URLs) and hash images; failures become error rows."""
    wanted = list(uris)
    fetched = (fetcher or Fetcher()).fetch_all(wanted)
    items: list[ImageItem] = []
    errors: list[ErrorRow] = []
    for uri in wanted:
        data = fetched[uri]
        with item_failure(errors, uri, Stage.READ) as attempt:
            if isinstance(data, SourceError):
                raise data
            info = read_image_info(data, name_of(uri), max_pixels)
        if attempt.failed:
            continue
        items.append(ImageItem(uri=uri, data=data, info=info, max_pixels=max_pixels))
    return items, errors


def collect_images(input_dir: str | None, manifest: str | None) -> list[str]:
    """The images of a run: a folder's image files, or a manifest's URIs."""
    if manifest is not None:
        return [row.uri for row in read_manifest(manifest)]
    if input_dir is None:
        raise SourceError("give a folder of images or a manifest")
    images = [str(p) for p in iter_image_files(input_dir)]
    if not images:
        raise no_images(input_dir)
    return images


def manifest_task_data(manifest: str | None, columns: Sequence[str]) -> dict[str, dict[str, str]] | None:
    """Each manifest image's values of ``columns`` (task data for new tasks); None without columns.

    A column the manifest does not have is an error before any task is made."""
    if not columns:
        return None
    if manifest is None:
        raise SourceError("task data comes from manifest columns: give a manifest")
    rows = read_manifest(manifest)
    have = {k for row in rows for k in row.fields} | {"name", "sha256", "width", "height"}
    missing = [c for c in columns if c not in have]
    if missing:
        raise SourceError(f"{manifest}: no column {missing[0]!r} for task data (has {sorted(have)})")
    out = {}
    for row in rows:
        known = {"name": row.name, "sha256": row.sha256, "width": str(row.width), "height": str(row.height)}
        out[row.uri] = {c: row.fields.get(c, known.get(c, "")) for c in columns}
    return out


@dataclass
class ReadBatch:
    """A batch read and looked up, ready for the model: every image read (their bytes), the
    cache misses to infer (decoded when the model needs pixels), and the result so far (the
    cache's records, the read error rows)."""

    items: list[ImageItem]
    misses: list[ImageItem]
    found: InferResult


def read_batch(
    uris: Iterable[str],
    model: ModelAdapter,
    cache: PredictionCache | None,
    *,
    refresh: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    fetcher: Fetcher | None = None,
) -> ReadBatch:
    """Read ``uris``, look them up in the cache, and decode the misses' pixels (in threads) when
    the model needs them: the CPU part of a batch, which ``prelabel.predict.stages`` runs ahead."""
    items, errors = read_items(uris, max_pixels, fetcher)
    batch = look_up(items, model, cache, refresh=refresh)
    batch.found.errors[:0] = errors
    if model.decodes_pixels and batch.misses:
        decode_batch(batch.misses)  # an undecodable image fails again, as its row, in predict
    return batch


def look_up(
    items: Sequence[ImageItem], model: ModelAdapter, cache: PredictionCache | None, *, refresh: bool = False
) -> ReadBatch:
    """The cache's records for ``items`` and the misses (``refresh``: every item misses; an entry
    that cannot be made sane misses too)."""
    found, misses = InferResult(), []
    signature = model.signature()
    for item in items:
        hit = None if (refresh or cache is None) else cache.get(item.info.sha256, signature)
        if hit is not None:  # an entry cached before its output was made sane: made so, or a miss
            sane = _sane(hit, item.info)
            hit = None if isinstance(sane, PrelabelError) else sane
        if hit is None:
            misses.append(item)
        else:
            found.records.append(PredictionRecord(item.info, hit, signature, uri=item.uri))
            found.cached += 1
    return ReadBatch(list(items), misses, found)


def reuse_earlier(batch: ReadBatch, earlier: InferResult, cache: PredictionCache | None) -> ReadBatch:
    """``batch`` with the misses that ``earlier`` (the batch inferred while this one was read,
    so not yet in the cache when it was looked up) has predictions for moved to the found
    records, counted cached, their pixels dropped. Only with a cache: without one (raw
    files) the same bytes need not mean the same predictions."""
    known = {r.image.sha256: r for r in earlier.records}
    if cache is None or not known or not batch.misses:
        return batch
    found = dataclasses.replace(batch.found, records=list(batch.found.records))
    misses = []
    for item in batch.misses:
        if (record := known.get(item.info.sha256)) is None:
            misses.append(item)
            continue
        item.unload()
        found.records.append(PredictionRecord(item.info, record.detections, record.model, uri=item.uri))
        found.cached += 1
    return ReadBatch(batch.items, misses, found)


def infer_read(batch: ReadBatch, model: ModelAdapter, cache: PredictionCache | None) -> InferResult:
    """The batch's result: its cached records, then the model's for the misses, made sane
    (``prelabel.predict.output``), then cached; an image the model fails on, or whose output
    cannot be made sane, becomes an error row (nothing of it cached). ``batch`` is left as it was but for the
    misses' decoded pixels, which are dropped (a retry decodes them again). With a cache (whose
    key says the model's output depends on the bytes alone), misses with the same bytes go
    to the model once; the others take its outcome, counted cached."""
    result = dataclasses.replace(
        batch.found,
        records=list(batch.found.records),
        errors=list(batch.found.errors),
        model_counts=Counter(batch.found.model_counts),
    )
    if not batch.misses:
        return result
    signature = model.signature()

    # Without a cache (raw files: the output depends on the path) each image is its own.
    def key(item: ImageItem) -> str:
        return item.info.sha256 if cache is not None else item.uri

    first: dict[str, ImageItem] = {}
    for item in batch.misses:
        first.setdefault(key(item), item)
    outcomes = dict(zip(first, model.predict(list(first.values())), strict=True))
    for item in batch.misses:
        item.unload()
    for k, outcome in outcomes.items():  # made sane, or refused, before anything is cached
        if not isinstance(outcome, PrelabelError):
            outcomes[k] = _sane(outcome, first[k].info)
    for item in batch.misses:
        outcome = outcomes[key(item)]
        if isinstance(outcome, PrelabelError):
            result.errors.append(failure_row(item.uri, model.failure_stage, outcome))
            continue
        if first[key(item)] is not item:
            result.cached += 1  # the same bytes as an image before it in the batch
        else:
            result.inferred += 1
            if cache is not None:
                cache.put(item.info.sha256, signature, outcome)
        result.records.append(PredictionRecord(item.info, outcome, signature, uri=item.uri))
    result.model_counts.update(model.drain_counts())
    return result


def _sane(found: Detections, image: ImageInfo) -> Detections | PrelabelError:
    """``sane_detections``, its refusal as the image's outcome."""
    try:
        return sane_detections(found, image)
    except (DetectionError, MaskError) as exc:
        return exc


def infer_items(
    items: Sequence[ImageItem],
    model: ModelAdapter,
    cache: PredictionCache | None,
    *,
    refresh: bool = False,
) -> InferResult:
    """Predictions for ``items``: from the cache where present, else from the model (then cached).

    ``refresh`` ignores cached entries (and overwrites them).
    """
    return infer_read(look_up(items, model, cache, refresh=refresh), model, cache)


def project_prompt(
    model: str,
    options: Mapping[str, Any],
    labels: Sequence[str],
    mapping: LabelMap,
    choices: Sequence[str] = (),
    region_choices: Sequence[str] = (),
) -> dict[str, Any]:
    """``options`` with what a model (or each part of a chain) was not given taken from the
    project: an open-vocabulary model's ``classes`` from its labels, an image classifier's
    ``choices`` from its Choices, and its ``region_choices`` from its perRegion Choices when
    it follows a detector (alone it has no regions). All go through the label map: the
    prompt says ``car``, the project ``civilian vehicle``."""
    given = dict(options)
    wanted = {
        "classes": mapping.prompt_classes(labels),
        "choices": mapping.prompt_classes(choices),
        "region_choices": mapping.prompt_classes(region_choices),
    }
    for position, (prefix, cls) in enumerate(model_parts(model)):
        chained = cls.choices_from_project and position > 0
        for option, wants in (
            ("classes", cls.prompt_from_project),
            ("choices", cls.choices_from_project),
            ("region_choices", chained),
        ):
            if wants and not given.get(prefix + option) and wanted[option]:
                given[prefix + option] = wanted[option]
    return given


def adapter_options(model: str, options: Mapping[str, Any], batch_size: int) -> dict[str, Any]:
    """``options`` with ``batch_size`` for each part of ``model`` that batches on its own and was
    not given one (``PRELABEL_INFER_BATCH_SIZE``): what a flow run and the ML backend both build
    their adapter from."""
    given = dict(options)
    for option in option_names(model):
        if option.rpartition(".")[2] == "batch_size" and option not in given:
            given[option] = batch_size
    return given


def default_model_version(model: str, signature: ModelSignature) -> str:
    """The ``model_version`` of predictions when none is given: the model's name and the start of
    its signature's digest, so other options or weights never share a version."""
    return f"{model}-{signature.key[:8]}"


def run_version(given: str | None, model: str, signature: ModelSignature, verifier_suffix: str | None) -> str:
    """The run's ``model_version``: the given one or the default, with the verifier's name and
    threshold when one filters the boxes (verified and unverified predictions never share one)."""
    version = given or default_model_version(model, signature)
    return f"{version}-{verifier_suffix}" if verifier_suffix else version


def run_cache(model: str, cache_dir: str | None, settings: Settings) -> tuple[PredictionCache | None, str]:
    """The prediction cache a run uses and its location (a local folder made absolute, so shard
    runs elsewhere find the same one); raw prediction files are read again, never cached."""
    location = cache_location(cache_dir, settings)
    return (None if model == "raw-files" else open_cache(location, settings)), location


def still_to_do(
    task_ids: Mapping[str, int], versions: Mapping[int, frozenset[str]], model_version: str, overwrite: bool
) -> list[str]:
    """The paired images whose task lacks a prediction of ``model_version`` (all with ``overwrite``)."""
    return [
        uri
        for uri, task_id in task_ids.items()
        if overwrite or model_version not in versions.get(task_id, frozenset())
    ]


def exemplar_options(model: str, options: Mapping[str, Any]) -> list[str]:
    """The options (``exemplars``; ``sam3.exemplars`` in a chain) that ask for the project's
    boxes as exemplars: the run fills each with people's boxes, by image, before the model is
    made. A model without the option is left to refuse it as an unknown option."""
    wanted = []
    for prefix, cls in model_parts(model):
        if (
            "exemplars" in model_option_names(cls)
            and options.get(f"{prefix}exemplars") == EXEMPLARS_FROM_PROJECT
        ):
            wanted.append(f"{prefix}exemplars")
    return wanted


def with_tasks(records: Iterable[PredictionRecord], task_ids: dict[str, int]) -> list[PredictionRecord]:
    """Records with their task ids set (records without a task are left out)."""
    return [dataclasses.replace(r, task_id=task_ids[r.uri]) for r in records if r.uri in task_ids]
