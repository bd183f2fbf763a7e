"""Image embeddings of review items: the whole image or a box crop with a context margin.

DINOv2 with registers and SigLIP 2 through transformers (``AutoModel`` and its image
processor: any hub id or local folder of either family). A model with
``get_image_features`` (SigLIP 2's vision-text checkpoints) gives its image embedding; a
vision model (DINOv2, ``Siglip2VisionModel``) its pooled output (DINOv2: the CLS token after
the final norm; SigLIP 2: the attention-pooling head). Embeddings are L2-normalised float32.

A box crop keeps ``margin`` of the box's width and height on each side (clamped to the
image), so the model sees a little context. Embeddings are cached like raw predictions, by
image sha256 + box + margin + model, in the prediction cache's store (a folder or an S3
prefix), so a rerun or a second set over the same images computes nothing again.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from prelabel.core.atomic import atomic_write
from prelabel.core.errors import ImageError, PrelabelError, SourceError
from prelabel.core.failures import ErrorRow, Stage, item_failure
from prelabel.core.images import DEFAULT_MAX_PIXELS, load_image, sha256_bytes
from prelabel.ingest.fetch import Fetcher
from prelabel.predict.models.runtime import autocast, load_pretrained, require_torch, select_device
from prelabel.records import ModelSignature
from prelabel.review.sets import ReviewItem
from prelabel.store.cache import PredictionCache

__all__ = [
    "CHECKPOINTS",
    "EmbedResult",
    "EmbedTally",
    "Embedder",
    "EmbedderName",
    "FeaturesSummary",
    "crop_box",
    "embed_items",
    "read_features",
    "write_features",
]

EmbedderName = Literal["dinov2", "siglip2"]
CHECKPOINTS: dict[str, str] = {
    "dinov2": "facebook/dinov2-with-registers-small",
    "siglip2": "google/siglip2-base-patch16-naflex",
}
"""The default checkpoint of each embedder (``checkpoint=`` takes any hub id or folder)."""

Vector = npt.NDArray[np.float32]


class Embedder:
    """One embedding model, loaded on first use (once per worker)."""

    def __init__(
        self,
        name: EmbedderName,
        checkpoint: str | None = None,
        revision: str | None = None,
        margin: float = 0.1,
        batch_size: int = 32,
        device: str | None = None,
        dtype: str = "bfloat16",
    ) -> None:
        if name not in CHECKPOINTS:
            raise PrelabelError(f"unknown embedder {name!r}: use {' or '.join(CHECKPOINTS)}")
        if not 0 <= margin <= 10:
            raise PrelabelError(f"margin {margin} is outside 0..10 (a fraction of the box size)")
        self.name, self.checkpoint = name, checkpoint or CHECKPOINTS[name]
        self.revision, self.margin, self.batch_size = revision, margin, max(1, batch_size)
        self.device, self.dtype = device, dtype
        self._model: Any = None
        self._processor: Any = None

    def signature(self) -> ModelSignature:
        """The model half of the cache key (the margin joins the box half: whole images ignore it)."""
        return ModelSignature(f"features-{self.name}", f"{self.checkpoint}@{self.revision or 'main'}")

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            require_torch(self.name)
            from transformers import AutoImageProcessor, AutoModel

            self.device = select_device(self.device)
            self._processor = load_pretrained(AutoImageProcessor, self.checkpoint, self.revision)
            model = load_pretrained(AutoModel, self.checkpoint, self.revision)
            self._model = model.to(self.device).eval()
        return self._model, self._processor

    def embed(self, images: Sequence[Any]) -> list[Vector]:
        """L2-normalised embeddings of PIL images, ``batch_size`` at a time."""
        import torch

        model, processor = self._load()
        device = self.device or "cpu"
        out: list[Vector] = []
        for start in range(0, len(images), self.batch_size):
            inputs = processor(images=list(images[start : start + self.batch_size]), return_tensors="pt")
            inputs = inputs.to(device)
            with torch.inference_mode(), autocast(device, self.dtype):
                if hasattr(model, "get_image_features"):
                    found = model.get_image_features(**inputs)
                    pooled = getattr(found, "pooler_output", found)
                else:
                    pooled = model(**inputs).pooler_output
            vectors = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
            out.extend(np.asarray(v, dtype=np.float32) for v in vectors)
        return out


def crop_box(
    image: Any, box: tuple[float, float, float, float] | None, margin: float, name: str = "<image>"
) -> Any:
    """The PIL crop of ``box`` with ``margin`` x its size on each side (clamped); the image if None."""
    if box is None:
        return image
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0.0, x1 - dx), max(0.0, y1 - dy)
    right, bottom = min(float(image.width), x2 + dx), min(float(image.height), y2 + dy)
    if right - left < 1 or bottom - top < 1:
        raise ImageError(name, f"box {box} lies outside the {image.width}x{image.height} image")
    return image.crop(
        (round(left), round(top), max(round(right), round(left) + 1), max(round(bottom), round(top) + 1))
    )


@dataclass
class EmbedResult:
    """A batch's embeddings by item id, how many came from the cache, and its failures."""

    vectors: dict[int, Vector] = field(default_factory=dict)
    cached: int = 0
    computed: int = 0
    errors: list[ErrorRow] = field(default_factory=list)


def embed_items(
    items: Sequence[ReviewItem],
    embedder: Embedder,
    fetcher: Fetcher,
    cache: PredictionCache | None,
    ls_url: str | None = None,
    refresh: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> EmbedResult:
    """Embed a batch: read each image once, look up the cache, run the model on the misses.

    A Label Studio ``/data/...`` reference is read from ``ls_url`` (with the fetcher's key).
    An unreadable image or a box outside it is an error row for its items; nothing else stops.
    """
    result = EmbedResult()
    signature = embedder.signature()
    uri_of = {item.id: _uri(item.image, ls_url) for item in items}
    data = fetcher.fetch_all(dict.fromkeys(uri_of.values()))
    misses: list[tuple[ReviewItem, str, Any]] = []
    for item in items:
        uri = uri_of[item.id]
        with item_failure(result.errors, uri, Stage.READ):
            raw = data[uri]
            if isinstance(raw, SourceError):
                raise raw
            key = _cache_name(signature, sha256_bytes(raw), item.box, embedder.margin)
            hit = None if cache is None or refresh else cache.get_marker(key)
            if hit is not None and isinstance(hit.get("embedding"), list):
                result.vectors[item.id] = np.asarray(hit["embedding"], dtype=np.float32)
                result.cached += 1
                continue
            image = load_image(raw, uri, max_pixels).rgb
            misses.append((item, key, crop_box(image, item.box, embedder.margin, uri)))
    if misses:  # a model that cannot load (SettingsError) stops the batch, as for predictions
        vectors = embedder.embed([crop for _, _, crop in misses])
        for (item, key, _), vector in zip(misses, vectors, strict=True):
            result.vectors[item.id] = vector
            if cache is not None:
                cache.put_marker(key, {"embedding": vector.tolist(), "model": dict(_describe(signature))})
        result.computed += len(misses)
    return result


def write_features(
    path: str | Path, vectors: Mapping[int, Vector], signature: ModelSignature, margin: float
) -> Path:
    """Parquet: ``item_id`` (int64) and ``embedding`` (list of float32), in item order; the model
    and margin in the file's metadata (``prelabel.model``, ``.revision``, ``.margin``). Written
    whole (atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = sorted(vectors)
    dims = {len(vectors[i]) for i in ids}
    if len(dims) > 1:
        raise PrelabelError(f"embeddings of different sizes {sorted(dims)}: one model per file")
    table = pa.table(
        {
            "item_id": pa.array(ids, pa.int64()),
            "embedding": pa.array([vectors[i].tolist() for i in ids], pa.list_(pa.float32())),
        }
    )
    meta = {f"prelabel.{k}": str(v) for k, v in {**_describe(signature), "margin": margin}.items()}
    table = table.replace_schema_metadata(meta)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    atomic_write(path, buffer.getvalue())
    return Path(path)


def read_features(path: str | Path) -> dict[int, Vector]:
    """The embeddings of a features file by item id."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["item_id", "embedding"])
    except (OSError, ValueError) as exc:
        raise PrelabelError(f"cannot read features file {path} ({exc})") from exc
    ids = table.column("item_id").to_pylist()
    rows = table.column("embedding").to_pylist()
    return {int(i): np.asarray(v, dtype=np.float32) for i, v in zip(ids, rows, strict=True)}


def _uri(image: str, ls_url: str | None) -> str:
    if image.startswith("/data/") and ls_url:
        return ls_url.rstrip("/") + image
    return image


def _cache_name(signature: ModelSignature, sha256: str, box: tuple[float, ...] | None, margin: float) -> str:
    where = "image" if box is None else "_".join(f"{v:.2f}" for v in box) + f"-m{margin:g}"
    return f"features/{signature.key}/{sha256[:2]}/{sha256}-{where}"


def _describe(signature: ModelSignature) -> dict[str, Any]:
    return {"model": signature.model, "revision": signature.revision, **signature.params}


@dataclass
class FeaturesSummary:
    """What a ``features`` run did: items, embedded (from the cache or computed), failed, files."""

    review_set: str
    out: str
    model: str
    items: int = 0
    cached: int = 0
    computed: int = 0
    failed: int = 0
    dim: int = 0
    errors_file: str = ""

    def markdown(self) -> str:
        return "\n".join(
            [
                f"# features: {self.model}",
                "",
                "| items | embedded | from cache | computed | failed | dimensions |",
                "| ---: | ---: | ---: | ---: | ---: | ---: |",
                f"| {self.items} | {self.cached + self.computed} | {self.cached} | {self.computed} | "
                f"{self.failed} | {self.dim} |",
                "",
                f"Review set `{self.review_set}`; embeddings `{self.out}`"
                + (f"; errors `{self.errors_file}`" if self.errors_file else ""),
            ]
        )


@dataclass
class EmbedTally:
    """The vectors and error rows of a ``features`` run's batches, counted into its summary."""

    summary: FeaturesSummary
    vectors: dict[int, Vector] = field(default_factory=dict)
    errors: list[ErrorRow] = field(default_factory=list)

    def add(self, done: EmbedResult) -> str:
        """One batch; returns its line for the log."""
        self.vectors.update(done.vectors)
        self.errors += done.errors
        self.summary.cached += done.cached
        self.summary.computed += done.computed
        return f"{done.cached} cached, {done.computed} computed, {len(done.errors)} failed"

    def close(self) -> FeaturesSummary:
        """The summary with the failed count and the vectors' dimension; raise when no item could
        be embedded."""
        summary = self.summary
        summary.failed = summary.items - len(self.vectors)
        if summary.items and not self.vectors:
            raise PrelabelError(f"no item of {summary.review_set} could be embedded: {self.errors[0].error}")
        summary.dim = len(next(iter(self.vectors.values()))) if self.vectors else 0
        return summary
