"""``features``: a review set's items -> image embeddings (Parquet keyed by item id), on the GPU pool."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import RunSizes, opaque
from flows.params import FeaturesParams
from prelabel.core.failures import write_errors
from prelabel.core.settings import load_settings
from prelabel.review.features import EmbedTally, FeaturesSummary, write_features
from prelabel.review.sets import ReviewSet, iter_batches
from prelabel.store.cache import open_cache
from tasks.features import embed_batch, embedder_for
from tasks.reporting import Progress

__all__ = ["FeaturesParams", "features"]


def default_out(review_set: str, embedder: str) -> str:
    """``<set without suffix>.<embedder>.parquet`` beside the set."""
    path = Path(review_set)
    return str(path.with_name(f"{path.stem}.{embedder}.parquet"))


@flow(name="features", log_prints=False)
def features(params: FeaturesParams) -> FeaturesSummary:
    """Embed every item of the set in batches through the cache; write Parquet and the error rows."""
    log = get_run_logger()
    settings = load_settings()
    sizes = RunSizes.of(params, settings)
    with ReviewSet(params.review_set) as review_set:
        items = review_set.items()
    options = {
        "name": params.embedder,
        "checkpoint": params.checkpoint,
        "revision": params.revision,
        "margin": params.margin,
        "device": params.device,
        "batch_size": params.model_batch_size or settings.infer_batch_size,
    }
    signature = embedder_for(options).signature()
    cache = open_cache(params.cache_dir or settings.cache_dir, settings)
    out = params.features or default_out(params.review_set, params.embedder)
    model = f"{signature.model} {signature.revision}, margin {params.margin:g}"
    tally = EmbedTally(FeaturesSummary(params.review_set, out, model, len(items)))
    progress = Progress(len(items), "prelabel-features-progress", unit="boxes")
    for number, batch in enumerate(iter_batches(items, sizes.task_batch), start=1):
        done = embed_batch(
            opaque(batch), options, opaque(cache), params.refresh, sizes.max_pixels, params.ls_url
        )
        progress.advance(len(batch))
        log.info("batch %d: %s", number, tally.add(done))
    summary = tally.close()
    write_features(out, tally.vectors, signature, params.margin)
    if tally.errors:
        summary.errors_file = str(Path(out).with_suffix(".errors.csv"))
        write_errors(Path(summary.errors_file), tally.errors)
    create_markdown_artifact(summary.markdown(), key="prelabel-features", description="prelabel features")
    return summary
