"""The pipeline both posting flows share; it reads like the diagram:

collect -> match (or import) -> skip finished -> [shards on GPU workers] -> [infer -> convert + post]
per batch -> report
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from flows.common import Inferred, RunSizes, inferred_batches, label_map, opaque
from flows.params import PreannotateParams, _PostOptions
from flows.scaleout import run_shards
from prelabel.errors import AllImagesFailedError
from prelabel.failures import ErrorRow
from prelabel.labelstudio.exemplars import NewRegions, new_regions
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.posting import PostReport
from prelabel.labelstudio.predictions import BatchBuild
from prelabel.pipeline import (
    chunks,
    default_model_version,
    exemplar_options,
    manifest_task_data,
    project_prompt,
    with_tasks,
)
from prelabel.records import PredictionRecord
from prelabel.reports import RunSummary
from prelabel.review.verifier import Verifier, VerifyStep
from prelabel.settings import Settings
from prelabel.store.cache import PredictionCache, open_cache
from tasks.common import LabelStudioConnection
from tasks.inference import model_for
from tasks.labelstudio import (
    load_project,
    match_images,
    payload_rows,
    post_batch,
    read_exemplars,
    show_predictions,
    tasks_by_id,
)
from tasks.reporting import Progress, write_new_regions_report, write_payload_files, write_report

__all__ = ["run_pipeline"]


def run_pipeline(
    params: _PostOptions,
    settings: Settings,
    ls: LabelStudioConnection,
    images: list[str],
    model: str,
    model_options: dict[str, Any],
    cache_dir: str | None,
    refresh: bool,
) -> RunSummary:
    """Run one project through the pipeline; returns the summary (raises when every image failed)."""
    log = get_run_logger()
    sizes = RunSizes.of(params, settings)
    project = load_project(ls, params.project_id)
    mapping = label_map(params, project.config)  # a target the project lacks: an error before any work
    model_options = project_prompt(
        model,
        model_options,
        project.config.region_labels,
        mapping,
        project.config.image_choices,
        project.config.region_choices,
    )
    task_ids = getattr(params, "task_ids", None)
    by_id = tasks_by_id(ls, project, opaque(task_ids)) if task_ids else None  # no matching by name
    if by_id is not None:
        images = list(by_id.task_ids)
    exemplars = None  # people's boxes by image, when the model is asked to use them
    if wanted := exemplar_options(model, model_options):
        exemplars = read_exemplars(ls, project, opaque(images), mapping, params.fuzzy)
        model_options = {**model_options, **dict.fromkeys(wanted, exemplars)}
    adapter = model_for(model, model_options)
    model_version = params.model_version or default_model_version(model, adapter.signature())
    verify = verify_step(params, mapping)
    if verify is not None:  # verified and unverified predictions never share a version
        model_version += "-" + Verifier.load(verify.path).version_suffix(verify.min_verified)
    cache: PredictionCache | None = None
    cache_location = str(cache_dir or settings.cache_dir)
    if model != "raw-files":
        if not cache_location.startswith("s3://"):  # shard runs elsewhere must find the same folder
            cache_location = str(Path(cache_location).expanduser().resolve())
        cache = open_cache(cache_location, settings)
    out = Path(params.output_dir)

    if by_id is not None:  # the tasks themselves, each with its own image
        matched = by_id
    else:
        task_data = manifest_task_data(getattr(params, "manifest", None), params.task_data)
        matched = match_images(ls, project, opaque(images), params.import_new, params.fuzzy,
                               opaque(task_data), max_pixels=sizes.max_pixels,
                               dry_run=params.dry_run)  # fmt: skip
    todo = [
        uri for uri, task_id in matched.task_ids.items()
        if params.overwrite or model_version not in matched.versions.get(task_id, frozenset())
    ]  # fmt: skip
    summary = RunSummary(
        project_id=project.id, model_version=model_version, images=len(images), matched=len(matched.task_ids),
        imported=matched.imported, skipped=len(matched.task_ids) - len(todo), dry_run=params.dry_run,
        unmatched_files=len(matched.match.unmatched_files),
        unmatched_tasks=len(matched.match.unmatched_tasks),
    )  # fmt: skip
    log.info("%d images, %d matched, %d to do, %d already posted", len(images), len(matched.task_ids),
             len(todo), summary.skipped)  # fmt: skip

    if isinstance(params, PreannotateParams) and params.shard_size and todo and cache is not None:
        run_shards(params, todo, model_options, adapter.signature(), cache, cache_location, sizes)

    errors: list[ErrorRow] = list(matched.errors)
    unmatched_labels: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    unfilled: set[str] | None = None  # controls no batch filled: said once for the run
    model_counts: Counter[str] = Counter()
    verified: Counter[str] = Counter()
    samples: list[PredictionRecord] = []
    found_new: list[NewRegions] = []
    progress = Progress(len(todo), key=f"prelabel-project-{project.id}-progress")

    def post(batch: Inferred) -> tuple[Inferred, list[PredictionRecord], BatchBuild, PostReport]:
        """Convert and post one batch (on the finishing thread, while the next one is inferred)."""
        records = with_tasks(batch.result.records, matched.task_ids)
        built, posted = post_batch(
            ls, project, opaque(records), opaque(matched.versions), mapping, model_version,
            overwrite=params.overwrite, dry_run=params.dry_run, masks=params.masks,
            polygon_tolerance=params.polygon_tolerance, chunk_size=sizes.post_chunk,
        )  # fmt: skip
        if params.save_payloads:
            write_payload_files(out / "payloads", opaque(payload_rows(built)))
        progress.advance(len(batch.uris), posted.created)  # here: an interrupt then counts what was posted
        return batch, records, built, posted

    batches = chunks(todo, sizes.task_batch)
    done = inferred_batches(batches, model, model_options, cache, refresh, sizes.max_pixels, post, verify)
    for number, (batch, records, built, posted) in enumerate(done, start=1):
        inferred = batch.result
        errors += inferred.errors + built.errors
        unmatched_labels.update(built.unmatched_labels)
        dropped.update(built.dropped)
        summary.regions += built.regions
        summary.region_choices += built.region_choices
        unfilled = built.unfilled if unfilled is None else unfilled & built.unfilled
        summary.cached += inferred.cached
        summary.inferred += inferred.inferred
        model_counts.update(inferred.model_counts)
        verified.update(inferred.verified)
        if exemplars is not None:
            found_new += new_regions(records, exemplars, mapping, project.config.region_labels)
        summary.posted += posted.created
        summary.replaced += posted.replaced
        samples += records[: params.contact_sheet_size - len(samples)]  # the contact sheet's images
        log.info("batch %d: %d posted, %d from cache, %d inferred, %d failed", number, posted.created,
                 inferred.cached, inferred.inferred, len(inferred.errors) + len(built.errors))  # fmt: skip

    if params.show_predictions and not params.dry_run:
        show_predictions(ls, project.id, model_version)
        log.info("annotators now see %s's predictions in project %d", model_version, project.id)
    if exemplars is not None:
        model_counts["regions beyond people's boxes"] = sum(row.new for row in found_new)
        write_new_regions_report(out, project.id, opaque(found_new))
    summary.failed = len(errors)
    summary.model_counts = dict(model_counts) or None
    summary.verified = dict(verified) if verify is not None else None
    summary.unmatched_labels = sum(unmatched_labels.values())
    summary.dropped = dict(dropped) or None
    if unfilled:
        summary.tags_not_filled = sorted(unfilled)
        log.warning("the model filled none of %s in this run", ", ".join(summary.tags_not_filled))
    summary = write_report(
        summary, out, Path(params.unmatched_csv), unmatched_labels, opaque(matched.match), opaque(errors),
        opaque(samples),
    )  # fmt: skip
    # Fine: posted (or skipped as done already), and in a dry run the images that would be imported.
    succeeded = len(todo) - (len(errors) - len(matched.errors)) + summary.skipped
    succeeded += summary.imported if params.dry_run else 0
    if errors and succeeded <= 0:
        raise AllImagesFailedError(f"every one of the {len(errors)} images failed; see {out / 'errors.csv'}")
    return summary


def verify_step(params: _PostOptions, mapping: LabelMap) -> VerifyStep | None:
    """The run's verifier step (``preannotate`` with a verifier), else None."""
    path = getattr(params, "verifier", None)
    if not path:
        return None
    return VerifyStep(str(Path(path).expanduser().resolve()), getattr(params, "min_verified", 0.5), mapping)
