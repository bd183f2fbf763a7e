"""The pipeline both posting flows share; it reads like the diagram:

collect -> match (or import) -> skip finished -> [shards on GPU workers] -> [infer -> convert + post]
per batch -> report
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from flows.common import Inferred, RunSizes, inferred_batches, label_map, opaque
from flows.params import PreannotateParams, _PostOptions
from flows.scaleout import run_shards
from prelabel.core.settings import Settings
from prelabel.labelstudio.client import Project
from prelabel.labelstudio.exemplars import new_regions
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.batches import (
    chunks,
    exemplar_options,
    manifest_task_data,
    project_prompt,
    run_cache,
    run_version,
    still_to_do,
    with_tasks,
)
from prelabel.records import ModelSignature
from prelabel.report.summary import RunSummary
from prelabel.report.tally import RunTally, start_line, start_summary
from prelabel.review.verifier import Verifier, VerifyStep
from prelabel.store.cache import PredictionCache
from tasks.common import LabelStudioConnection
from tasks.inference import model_for
from tasks.labelstudio import (
    MatchOutcome,
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


@dataclass(frozen=True)
class _Run:
    """What every batch of a run shares once the project, the model and the match are known."""

    params: _PostOptions
    ls: LabelStudioConnection
    project: Project
    mapping: LabelMap
    model: str
    model_options: dict[str, Any]
    images: int
    model_version: str
    signature: ModelSignature
    exemplars: dict[str, list[list[Any]]] | None
    verify: VerifyStep | None
    sizes: RunSizes


def run_pipeline(
    params: _PostOptions,
    settings: Settings,
    ls: LabelStudioConnection,
    images: list[str],
    model: str,
    model_options: dict[str, Any],
    cache_dir: str | None,
    refresh: bool,
    *,
    manifest: str | None = None,
    task_ids: Sequence[int] = (),
    verifier: str | None = None,
    min_verified: float = 0.5,
    scale_out: PreannotateParams | None = None,
) -> RunSummary:
    """Run one project through the pipeline; returns the summary (raises when every image failed).

    ``task_ids``: these tasks with their own images instead of ``images`` matched by name;
    ``scale_out``: infer in shards on the ``infer_deployment`` first (its ``shard_size`` set)."""
    log = get_run_logger()
    run, matched = _plan(
        params, settings, ls, images, model, model_options, manifest, task_ids, verifier, min_verified
    )
    cache, cache_location = run_cache(model, cache_dir, settings)
    todo = still_to_do(matched.task_ids, matched.versions, run.model_version, params.overwrite)
    summary = start_summary(run.project.id, run.model_version, run.images, todo, matched, params.dry_run)
    log.info("%s", start_line(summary, len(todo), "images"))
    if scale_out is not None and todo and cache is not None:
        run_shards(scale_out, todo, run.model_options, run.signature, cache, cache_location, run.sizes)
    tally = RunTally(earlier_errors=list(matched.errors), sample_size=params.contact_sheet_size)
    for number, posted in enumerate(_post_batches(run, matched, todo, cache, refresh, tally), start=1):
        log.info("batch %d: %s", number, posted)
    if params.show_predictions and not params.dry_run:
        show_predictions(ls, run.project.id, run.model_version)
        log.info("annotators now see %s's predictions in project %d", run.model_version, run.project.id)
    summary = _report(run, summary, tally, matched)
    tally.check_some_fine(summary, len(todo), str(Path(params.output_dir) / "errors.csv"))
    return summary


def _plan(
    params: _PostOptions,
    settings: Settings,
    ls: LabelStudioConnection,
    images: list[str],
    model: str,
    model_options: dict[str, Any],
    manifest: str | None,
    task_ids: Sequence[int],
    verifier: str | None,
    min_verified: float,
) -> tuple[_Run, MatchOutcome]:
    """The run's settings once the project is read, and its images paired with tasks: by id
    (``task_ids``, each task with its own image), else by name."""
    project = load_project(ls, params.project_id)
    by_id = tasks_by_id(ls, project, opaque(list(task_ids))) if task_ids else None
    images = list(by_id.task_ids) if by_id is not None else images
    run = _prepare(params, settings, ls, project, model, model_options, images, verifier, min_verified)
    return run, by_id if by_id is not None else _match(run, images, manifest)


def _report(run: _Run, summary: RunSummary, tally: RunTally, matched: MatchOutcome) -> RunSummary:
    """The summary filled from the tally, and the report files written."""
    out = Path(run.params.output_dir)
    if run.exemplars is not None:
        write_new_regions_report(out, run.project.id, opaque(tally.new_regions))
    summary = tally.fill(summary, verifier=run.verify is not None, exemplars=run.exemplars is not None)
    if summary.tags_not_filled:
        get_run_logger().warning(
            "the model filled none of %s in this run", ", ".join(summary.tags_not_filled)
        )
    unmatched_csv = Path(run.params.unmatched_csv)
    errors, samples = opaque(tally.all_errors), opaque(tally.samples)
    return write_report(
        summary, out, unmatched_csv, tally.unmatched_labels, opaque(matched.match), errors, samples
    )


def _prepare(
    params: _PostOptions,
    settings: Settings,
    ls: LabelStudioConnection,
    project: Project,
    model: str,
    model_options: dict[str, Any],
    images: list[str],
    verifier: str | None,
    min_verified: float,
) -> _Run:
    """The label map, the model's options from the project (its prompt, people's boxes as
    exemplars when asked for), the verifier and the model version."""
    mapping = label_map(params, project.config)  # a target the project lacks: an error before any work
    config = project.config
    model_options = project_prompt(
        model, model_options, config.region_labels, mapping, config.image_choices, config.region_choices
    )
    exemplars = None  # people's boxes by image, when the model is asked to use them
    if wanted := exemplar_options(model, model_options):
        exemplars = read_exemplars(ls, project, opaque(images), mapping, params.fuzzy)
        model_options = {**model_options, **dict.fromkeys(wanted, exemplars)}
    verify = None
    if verifier:
        verify = VerifyStep(str(Path(verifier).expanduser().resolve()), min_verified, mapping)
    suffix = Verifier.load(verify.path).version_suffix(verify.min_verified) if verify else None
    signature = model_for(model, model_options).signature()
    model_version = run_version(params.model_version, model, signature, suffix)
    sizes = RunSizes.of(params, settings)
    return _Run(
        params,
        ls,
        project,
        mapping,
        model,
        model_options,
        len(images),
        model_version,
        signature,
        exemplars,
        verify,
        sizes,
    )


def _match(run: _Run, images: list[str], manifest: str | None) -> MatchOutcome:
    """The images paired with the project's tasks by name (new ones imported when asked)."""
    params = run.params
    task_data = manifest_task_data(manifest, params.task_data)
    return match_images(
        run.ls,
        run.project,
        opaque(images),
        params.import_new,
        params.fuzzy,
        opaque(task_data),
        max_pixels=run.sizes.max_pixels,
        dry_run=params.dry_run,
    )


def _post_batches(
    run: _Run,
    matched: MatchOutcome,
    todo: list[str],
    cache: PredictionCache | None,
    refresh: bool,
    tally: RunTally,
) -> Iterator[str]:
    """Infer, convert and post ``todo`` batch by batch into ``tally``; yields a line per batch."""
    params, out = run.params, Path(run.params.output_dir)
    progress = Progress(len(todo), key=f"prelabel-project-{run.project.id}-progress")

    def post(batch: Inferred) -> str:
        """Convert and post one batch (on the finishing thread, while the next one is inferred)."""
        records = with_tasks(batch.result.records, matched.task_ids)
        built, posted = post_batch(
            run.ls,
            run.project,
            opaque(records),
            opaque(matched.versions),
            run.mapping,
            run.model_version,
            overwrite=params.overwrite,
            dry_run=params.dry_run,
            masks=params.masks,
            polygon_tolerance=params.polygon_tolerance,
            chunk_size=run.sizes.post_chunk,
        )
        if params.save_payloads:
            write_payload_files(out / "payloads", opaque(payload_rows(built)))
        progress.advance(len(batch.uris), posted.created)  # here: an interrupt then counts what was posted
        found = []
        if run.exemplars is not None:
            found = new_regions(records, run.exemplars, run.mapping, run.project.config.region_labels)
        return tally.add(batch.result, records, built, posted, found)

    batches = chunks(todo, run.sizes.task_batch)
    max_pixels = run.sizes.max_pixels
    yield from inferred_batches(
        batches, run.model, run.model_options, cache, refresh, max_pixels, post, run.verify
    )
