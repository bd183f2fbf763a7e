"""The yes/no review loop, one ``prelabel review`` group in the order people use it: ``create``
(a review set: the items to ask about), ``features`` (their embeddings, through the
``features`` flow), ``next`` (what to ask next, per strategy), ``serve`` (the keyboard review
page), ``apply`` (the answers back into Label Studio), ``verifier`` (the classifier, saved).
The old spellings ``prelabel review-set create`` and ``prelabel features`` stay, hidden, for a
release."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from flows.params import FeaturesParams
from prelabel.core.errors import PrelabelError
from prelabel.core.settings import load_settings
from prelabel_cli.checks import check_project, label_studio
from prelabel_cli.collector import collector_paused
from prelabel_cli.exits import EXIT_IMAGES_FAILED
from prelabel_cli.options import (
    ADVANCED,
    BASICS,
    LABEL_STUDIO,
    MODEL,
    OUTPUT,
    AllowFailures,
    ApiKey,
    LsUrl,
    flow_default,
    flow_option,
    renamed,
    use_api_key,
)
from prelabel_cli.runs import run_flow

__all__ = [
    "review_apply",
    "review_create",
    "review_features",
    "review_next",
    "review_serve",
    "review_verifier",
]

review_app = typer.Typer(
    help="""The yes/no review loop: people answer yes or no per predicted box, in the order that
    teaches most; the answers go back into Label Studio and train a verifier for later runs.

    Example:

    prelabel review create --project-id 3 --model-version m1 --set cars.sqlite

    prelabel review serve --set cars.sqlite
    """,
    no_args_is_help=True,
)
# The old spellings, hidden for a release: the `review-set create` group and the top-level `features`.
review_set_app = typer.Typer(no_args_is_help=True)
commands = typer.Typer()

SetPath = Annotated[Path, flow_option(FeaturesParams, "review_set", BASICS)]
FeaturesFile = Annotated[
    Path,
    typer.Option("--features", rich_help_panel=BASICS, help="Parquet file from `prelabel review features`."),
]
Strategy = Annotated[
    Literal["entropy", "max-prob", "random"],
    typer.Option("--strategy", rich_help_panel=ADVANCED, help="What to ask first."),
]
Target = Annotated[
    Literal["yes", "no"],
    typer.Option("--target", rich_help_panel=ADVANCED, help="max-prob: most likely yes, or most likely no."),
]
Seed = Annotated[int, typer.Option("--seed", rich_help_panel=ADVANCED, help="Seed of the random draws.")]


@review_app.command("create", cls=renamed(out="--set"))
@review_set_app.command("create", cls=renamed(out="--set"))
def review_create(
    review_set: Annotated[
        Path, typer.Option("--set", rich_help_panel=BASICS, help="SQLite file to write (one file per set).")
    ],
    project_id: Annotated[
        int | None,
        typer.Option("--project-id", min=1, rich_help_panel=BASICS, help="From this project's predictions."),
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(
            "--model-version",
            rich_help_panel=BASICS,
            help="The predictions' model version (with --project-id).",
        ),
    ] = None,
    references: Annotated[
        Path | None,
        typer.Option(
            "--references",
            rich_help_panel=BASICS,
            help="Instead of a project: a file of img_path[,x1,y1,x2,y2[,label]] lines.",
        ),
    ] = None,
    per: Annotated[
        Literal["box", "image"],
        typer.Option(
            "--per", rich_help_panel=BASICS, help="One item per predicted box, or per image and label."
        ),
    ] = "box",
    label: Annotated[
        str, typer.Option("--label", rich_help_panel=BASICS, help="Label of reference lines without one.")
    ] = "object",
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", rich_help_panel=OUTPUT, help="Replace an existing set.")
    ] = False,
) -> None:
    """Create a review set, the items people answer yes or no to: from a project's predictions
    of one model version, or from a references file.

    Examples:

    prelabel review create --project-id 3 --model-version dinox-v1 --set cars.sqlite

    prelabel review create --references boxes.csv --label car --set cars.sqlite
    """
    from prelabel.review.sets import ReviewSet, items_from_references, items_from_tasks

    if (project_id is None) == (references is None):
        raise PrelabelError("give exactly one of --project-id (with --model-version) and --references")
    if references is not None:
        items = items_from_references(references, label)
        meta: dict[str, object] = {"source": "references", "references": references.resolve()}
        skipped: Counter[str] = Counter()
    elif project_id is not None:
        if not model_version:
            raise PrelabelError("--project-id needs --model-version (see the project's predictions)")
        use_api_key(api_key, ls_url)
        with label_studio(ls_url, project_id) as client:
            data_key = client.get_project(project_id).config.image.data_key
            versions = client.model_versions(project_id)
            if model_version not in versions:
                known = ", ".join(sorted(versions)) or "none"
                raise PrelabelError(
                    f"project {project_id} has no predictions of {model_version!r} (has: {known})"
                )
            items, skipped = items_from_tasks(
                client.iter_tasks(project_id, full=True), model_version, data_key, per
            )
        meta = {
            "source": "project",
            "project_id": project_id,
            "model_version": model_version,
            "per": per,
            "ls_url": client.url,
        }
    with ReviewSet.create(review_set, items, meta, overwrite=overwrite) as created:
        labels = Counter(item.label for item in created.items())
    typer.echo(
        f"{sum(labels.values())} items in {review_set}: "
        + ", ".join(f"{k} ({n})" for k, n in sorted(labels.items()))
    )
    for reason, n in sorted(skipped.items()):
        typer.echo(f"  left out: {n} results, {reason}")


def _features(field: str, panel: str) -> Any:
    return flow_option(FeaturesParams, field, panel)


@review_app.command("features", cls=renamed(out="--features"))
@commands.command("features", cls=renamed(out="--features"), hidden=True)
def review_features(
    review_set: SetPath,
    features_file: Annotated[Path | None, _features("features", BASICS)] = None,
    embedder: Annotated[Literal["dinov2", "siglip2"], _features("embedder", BASICS)] = flow_default(
        FeaturesParams, "embedder"
    ),
    checkpoint: Annotated[str | None, _features("checkpoint", MODEL)] = None,
    margin: Annotated[float, _features("margin", MODEL)] = flow_default(FeaturesParams, "margin"),
    device: Annotated[str | None, _features("device", MODEL)] = None,
    cache_dir: Annotated[str | None, _features("cache_dir", MODEL)] = None,
    refresh: Annotated[bool, _features("refresh", MODEL)] = flow_default(FeaturesParams, "refresh"),
    ls_url: Annotated[str | None, _features("ls_url", LABEL_STUDIO)] = None,
    api_key: ApiKey = None,
    allow_failures: AllowFailures = False,
    batch_size: Annotated[int | None, _features("batch_size", ADVANCED)] = None,
) -> None:
    """Image embeddings of a review set's items (the whole image or the box with a margin),
    cached, as Parquet: they let `prelabel review next` and the review page learn from the
    answers.

    Example:

    prelabel review features --set cars.sqlite --embedder siglip2 --margin 0.2
    """
    from prelabel.predict.models.hub import read_locally
    from prelabel.review.features import CHECKPOINTS

    use_api_key(api_key, ls_url)
    _check_label_studio(review_set, ls_url)  # the set is there, and the Label Studio serving its images
    read_locally(checkpoint or CHECKPOINTS[embedder], None)  # offline: one line now, not after retries
    with collector_paused():
        from flows.features import features as features_flow

    params = FeaturesParams(
        review_set=str(review_set),
        features=str(features_file) if features_file else None,
        embedder=embedder,
        checkpoint=checkpoint,
        margin=margin,
        device=device,
        batch_size=batch_size,
        cache_dir=cache_dir,
        refresh=refresh,
        ls_url=ls_url,
    )
    done = run_flow(features_flow, params, show=lambda s: str(s.markdown()))
    if done.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


@review_app.command("next")
def review_next(
    review_set: SetPath,
    features_file: FeaturesFile,
    label: Annotated[
        str | None,
        typer.Option("--label", rich_help_panel=BASICS, help="The label to review (default: the only one)."),
    ] = None,
    strategy: Strategy = "entropy",
    target: Target = "yes",
    count: Annotated[
        int, typer.Option("--count", rich_help_panel=OUTPUT, min=1, help="How many items to list.")
    ] = 10,
    seed: Seed = 0,
) -> None:
    """The next items to ask (after a refit on the answers so far), and the held-out accuracy.

    Example:

    prelabel review next --set cars.sqlite --features cars.dinov2.parquet --strategy max-prob
    """
    from prelabel.review.features import read_features
    from prelabel.review.learning import held_out_accuracy, next_items
    from prelabel.review.sets import ReviewSet

    vectors = read_features(features_file)
    with ReviewSet(review_set) as opened:
        labels = opened.labels()
        if label is None:
            if len(labels) != 1:
                raise PrelabelError(f"--label: the set has labels {', '.join(labels)}; name one")
            label = labels[0]
        elif label not in labels:
            raise PrelabelError(f"--label {label!r}: the set has {', '.join(labels) or 'no labels'}")
        chosen = next_items(opened, vectors, label, strategy, target, count, seed)
        accuracy = held_out_accuracy(opened, vectors, label)
    typer.echo("item\tp_yes\theld_out\tscore\ttask\timage\tbox")
    for s in chosen:
        box = ",".join(f"{v:.1f}" for v in s.item.box) if s.item.box else ""
        score = "" if s.item.score is None else f"{s.item.score:.3f}"
        typer.echo(
            f"{s.item.id}\t{s.p_yes:.3f}\t{int(s.held_out)}\t{score}\t{s.item.task_id or ''}\t"
            f"{s.item.image}\t{box}"
        )
    shown = "n/a" if accuracy.accuracy is None else f"{accuracy.accuracy:.1%}"
    cold = " (cold start: detector scores)" if chosen and chosen[0].cold_start else ""
    typer.echo(f"held-out accuracy: {shown} on {accuracy.count} answers{cold}")


@review_app.command("apply")
def review_apply(
    review_set: SetPath,
    answers_csv: Annotated[
        Path | None,
        typer.Option(
            "--answers", rich_help_panel=OUTPUT, help="Answers CSV to write (default <set>.answers.csv)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", rich_help_panel=BASICS, help="Write the CSV, count, post nothing.")
    ] = False,
    annotate: Annotated[
        bool,
        typer.Option(
            "--annotate",
            rich_help_panel=LABEL_STUDIO,
            help="Also make each task's accepted regions an annotation.",
        ),
    ] = False,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Write <version>-reviewed: the predictions minus the regions answered "no", those answered
    "yes" marked (meta.reviewed), changed in place on later applies; write the answers CSV.

    Examples:

    prelabel review apply --set cars.sqlite --dry-run

    prelabel review apply --set cars.sqlite
    """
    from prelabel.review.apply import apply_answers
    from prelabel.review.sets import ReviewSet

    use_api_key(api_key, ls_url)
    with ReviewSet(review_set) as opened:
        if opened.meta.get("source") != "project":
            raise PrelabelError(f"{review_set} was made from a references file: nothing to apply to")
        settings = load_settings()
        out = answers_csv or review_set.with_suffix(".answers.csv")
        with label_studio(ls_url, int(opened.meta["project_id"])) as client:
            done = apply_answers(
                client, opened, out, chunk_size=settings.post_batch_size, dry_run=dry_run, annotate=annotate
            )
    for line in done.lines():
        typer.echo(line)
    typer.echo(f"answers: {out}")


@review_app.command("verifier", cls=renamed(out="--verifier"))
def review_verifier(
    review_set: SetPath,
    features_file: FeaturesFile,
    verifier: Annotated[
        Path | None,
        typer.Option(
            "--verifier",
            rich_help_panel=OUTPUT,
            help="Verifier JSON to write (default <set>.verifier.json), for `prelabel run --verifier`.",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            rich_help_panel=OUTPUT,
            help="Its name in model versions (default: the set's file name).",
        ),
    ] = None,
) -> None:
    """Train the verifier on the set's answers and save it as JSON (weights, metrics, embedder).

    Example:

    prelabel review verifier --set cars.sqlite --features cars.dinov2.parquet --name cars
    """
    from prelabel.review.features import read_features
    from prelabel.review.sets import ReviewSet
    from prelabel.review.verifier import features_embedder, train_verifier

    embedder = features_embedder(features_file)
    vectors = read_features(features_file)
    with ReviewSet(review_set) as opened:
        trained = train_verifier(opened, vectors, embedder, name or review_set.stem)
    target = trained.save(verifier or review_set.with_suffix(".verifier.json"))
    typer.echo("label\ttrained_on\tpositives\theld_out_accuracy\theld_out")
    for label, model in sorted(trained.labels.items()):
        accuracy = "n/a" if model.held_out_accuracy is None else f"{model.held_out_accuracy:.1%}"
        note = "" if model.weights is not None else "\t(one class only: keeps every box)"
        typer.echo(f"{label}\t{model.trained_on}\t{model.positives}\t{accuracy}\t{model.held_out}{note}")
    typer.echo(f"verifier {trained.name!r}: {target}")


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@review_app.command("serve")
def review_serve(
    review_set: SetPath,
    features_file: Annotated[
        Path | None,
        typer.Option(
            "--features",
            rich_help_panel=BASICS,
            help="Parquet file from `prelabel review features`; without: by detector score.",
        ),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            "--label", rich_help_panel=BASICS, help="Review this label only (default: all, in turn)."
        ),
    ] = None,
    strategy: Strategy = "entropy",
    target: Target = "yes",
    seed: Seed = 0,
    host: Annotated[
        str,
        typer.Option(
            "--host", rich_help_panel=BASICS, help="Address to bind; other than loopback needs a token."
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", rich_help_panel=BASICS, min=0, max=65535, help="Port to listen on.")
    ] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="PRELABEL_REVIEW_TOKEN",
            rich_help_panel=BASICS,
            help="One token for everyone, required on every request (open "
            "http://HOST:PORT/?token=...); prefer PRELABEL_REVIEW_TOKEN.",
        ),
    ] = None,
    reviewers: Annotated[
        Path | None,
        typer.Option(
            "--reviewers",
            rich_help_panel=BASICS,
            help="A file of name,token[,lead] lines: a token per reviewer.",
        ),
    ] = None,
    leads: Annotated[
        list[str] | None,
        typer.Option(
            "--lead", rich_help_panel=BASICS, help="A reviewer who may correct others (repeatable)."
        ),
    ] = None,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """The review page: keys A/Left = no, D/Right = yes, S = skip, Backspace = undo, R = retry image.

    Examples:

    prelabel review serve --set cars.sqlite --features cars.dinov2.parquet

    prelabel review serve --set cars.sqlite --host 0.0.0.0 --reviewers reviewers.csv --lead maria
    """
    import logging

    import uvicorn

    from prelabel.review.features import read_features
    from prelabel.review.queue import ReviewQueue
    from prelabel.review.server import create_app, listen
    from prelabel.review.team import Team, check_name, read_reviewers

    if reviewers is not None and token:
        raise PrelabelError("give --token (or PRELABEL_REVIEW_TOKEN) or --reviewers, not both")
    if reviewers is not None:
        team = read_reviewers(reviewers, leads or ())
    else:
        team = Team(token=token or None, leads=frozenset(check_name(n) for n in leads or ()))
    if host not in _LOOPBACK and team.open:
        raise PrelabelError(f"--host {host} is reachable from other machines: give --token or --reviewers")
    use_api_key(api_key, ls_url)
    vectors = read_features(features_file) if features_file is not None else None
    queue = ReviewQueue(review_set, vectors, strategy, target, seed, label)
    _check_label_studio(review_set, ls_url)
    settings = load_settings()
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    how = "?token=<your token>" if reviewers else "?token=..." if team.token else ""
    typer.echo(f"review page: http://{shown}:{bound}/{how}")
    if team.leads and reviewers is None:
        trust = "names are taken on trust without a token per reviewer: give --reviewers for a token each"
        typer.echo(trust, err=True)
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("prelabel.review").setLevel(logging.INFO)  # one line per answer
    server = uvicorn.Server(uvicorn.Config(create_app(queue, settings, team), log_level="warning"))
    server.run(sockets=[sock])


def _check_label_studio(review_set: Path, ls_url: str | None) -> None:
    """A set whose images Label Studio serves needs the key, and (a set made from a project)
    Label Studio up, the key accepted and the project there, before the page starts: else every
    image would fail on the page."""
    from prelabel.review.sets import ReviewSet

    with ReviewSet(review_set) as opened:
        meta = opened.meta
        served = any(item.image.startswith("/data/") for item in opened.items())
    if meta.get("source") == "project":
        check_project(ls_url, int(meta["project_id"]))
    elif served:
        load_settings().ls_key_for(ls_url)
