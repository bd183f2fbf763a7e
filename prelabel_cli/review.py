"""Yes/no review commands: ``review-set create`` (items to ask about), ``features`` (their
embeddings, through the ``features`` flow), ``review next`` (what to ask next, per strategy),
``review apply`` (answers back into Label Studio), ``review verifier`` (the classifier, saved),
``review serve`` (the keyboard review page)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

import typer

from prelabel.errors import PrelabelError
from prelabel.settings import load_settings
from prelabel_cli.app import EXIT_IMAGES_FAILED, app
from prelabel_cli.checks import check_project, label_studio
from prelabel_cli.options import AllowFailures, ApiKey, CacheDir, LsUrl, Refresh, TaskBatch, use_api_key
from prelabel_cli.runs import run_flow

__all__ = ["features", "review_apply", "review_next", "review_serve", "review_set_create", "review_verifier"]

review_set_app = typer.Typer(help="Review sets: the items people answer yes or no to.", no_args_is_help=True)
review_app = typer.Typer(help="Active learning over a review set.", no_args_is_help=True)
app.add_typer(review_set_app, name="review-set")
app.add_typer(review_app, name="review")

SetPath = Annotated[Path, typer.Option("--set", help="The review set's SQLite file.")]
FeaturesFile = Annotated[Path, typer.Option("--features", help="Parquet file from `prelabel features`.")]
Strategy = Annotated[
    Literal["entropy", "max-prob", "random"], typer.Option("--strategy", help="What to ask first.")
]
Target = Annotated[
    Literal["yes", "no"], typer.Option("--target", help="max-prob: most likely yes, or most likely no.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the random draws.")]


@review_set_app.command("create")
def review_set_create(
    out: Annotated[Path, typer.Option("--out", help="SQLite file to write (one file per set).")],
    project_id: Annotated[
        int | None, typer.Option("--project-id", min=1, help="From this project's predictions.")
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option("--model-version", help="The predictions' model_version (with --project-id)."),
    ] = None,
    per: Annotated[
        Literal["box", "image"],
        typer.Option("--per", help="One item per predicted box, or per image and label."),
    ] = "box",
    references: Annotated[
        Path | None, typer.Option("--references", help="A file of img_path[,x1,y1,x2,y2[,label]] lines.")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="Label of reference lines without one.")] = "object",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing set.")] = False,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Create a review set from a project's predictions or from a references file.

    Example: prelabel review-set create --project-id 3 --model-version dinox-v1 --out cars.sqlite
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
        meta = {"source": "project", "project_id": project_id, "model_version": model_version, "per": per,
                "ls_url": client.url}  # fmt: skip
    with ReviewSet.create(out, items, meta, overwrite=overwrite) as created:
        labels = Counter(item.label for item in created.items())
    typer.echo(
        f"{sum(labels.values())} items in {out}: "
        + ", ".join(f"{k} ({n})" for k, n in sorted(labels.items()))
    )
    for reason, n in sorted(skipped.items()):
        typer.echo(f"  left out: {n} results, {reason}")


@app.command()
def features(
    review_set: SetPath,
    embedder: Annotated[
        Literal["dinov2", "siglip2"], typer.Option("--embedder", help="dinov2 (with registers) or siglip2.")
    ] = "dinov2",
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", help="Hub id or local folder.")] = None,
    margin: Annotated[
        float,
        typer.Option("--margin", min=0, max=10, help="Context around a box, fraction of its size per side."),
    ] = 0.1,
    out: Annotated[
        Path | None, typer.Option("--out", help="Parquet file (default <set>.<embedder>.parquet).")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cuda, cpu (default: CUDA when present).")
    ] = None,
    batch_size: TaskBatch = None,
    cache_dir: CacheDir = None,
    refresh: Refresh = False,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
    allow_failures: AllowFailures = False,
) -> None:
    """Image embeddings of a review set's items (whole image or box crop), cached, as Parquet.

    Example: prelabel features --set cars.sqlite --embedder siglip2 --margin 0.2
    """
    from prelabel.models.hub import read_locally
    from prelabel.review.features import CHECKPOINTS

    use_api_key(api_key, ls_url)
    _check_label_studio(review_set, ls_url)  # the set is there, and the Label Studio serving its images
    read_locally(checkpoint or CHECKPOINTS[embedder], None)  # offline: one line now, not after retries
    from flows.features import FeaturesParams
    from flows.features import features as features_flow

    params = FeaturesParams(
        review_set=str(review_set), out=str(out) if out else None, embedder=embedder,
        checkpoint=checkpoint, margin=margin, device=device, batch_size=batch_size, cache_dir=cache_dir,
        refresh=refresh, ls_url=ls_url,
    )  # fmt: skip
    done = run_flow(features_flow, params, show=lambda s: str(s.markdown()))
    if done.failed and not allow_failures:
        raise typer.Exit(EXIT_IMAGES_FAILED)


@review_app.command("next")
def review_next(
    review_set: SetPath,
    features_file: FeaturesFile,
    label: Annotated[
        str | None, typer.Option("--label", help="The label to review (default: the only one).")
    ] = None,
    strategy: Strategy = "entropy",
    target: Target = "yes",
    count: Annotated[int, typer.Option("--count", min=1, help="How many items to list.")] = 10,
    seed: Seed = 0,
) -> None:
    """The next items to ask (after a refit on the answers so far), and the held-out accuracy.

    Example: prelabel review next --set cars.sqlite --features cars.dinov2.parquet --strategy max-prob
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
        typer.echo(f"{s.item.id}\t{s.p_yes:.3f}\t{int(s.held_out)}\t{score}\t{s.item.task_id or ''}\t"
                   f"{s.item.image}\t{box}")  # fmt: skip
    shown = "n/a" if accuracy.accuracy is None else f"{accuracy.accuracy:.1%}"
    cold = " (cold start: detector scores)" if chosen and chosen[0].cold_start else ""
    typer.echo(f"held-out accuracy: {shown} on {accuracy.count} answers{cold}")


@review_app.command("apply")
def review_apply(
    review_set: SetPath,
    answers_csv: Annotated[
        Path | None, typer.Option("--answers", help="Answers CSV to write (default <set>.answers.csv).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write the CSV, count, post nothing.")] = False,
    annotate: Annotated[
        bool, typer.Option("--annotate", help="Also make each task's accepted regions an annotation.")
    ] = False,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Write <version>-reviewed: the predictions minus the regions answered "no", those answered
    "yes" marked (meta.reviewed), changed in place on later applies; write the answers CSV.

    Example: prelabel review apply --set cars.sqlite
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
            done = apply_answers(client, opened, out, chunk_size=settings.post_batch_size, dry_run=dry_run,
                                 annotate=annotate)  # fmt: skip
    for line in done.lines():
        typer.echo(line)
    typer.echo(f"answers: {out}")


@review_app.command("verifier")
def review_verifier(
    review_set: SetPath,
    features_file: FeaturesFile,
    out: Annotated[
        Path | None, typer.Option("--out", help="Verifier JSON to write (default <set>.verifier.json).")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Its name in model versions (default: the set's file name).")
    ] = None,
) -> None:
    """Train the verifier on the set's answers and save it as JSON (weights, metrics, embedder).

    Example: prelabel review verifier --set cars.sqlite --features cars.dinov2.parquet
    """
    from prelabel.review.features import read_features
    from prelabel.review.sets import ReviewSet
    from prelabel.review.verifier import features_embedder, train_verifier

    embedder = features_embedder(features_file)
    vectors = read_features(features_file)
    with ReviewSet(review_set) as opened:
        verifier = train_verifier(opened, vectors, embedder, name or review_set.stem)
    target = verifier.save(out or review_set.with_suffix(".verifier.json"))
    typer.echo("label\ttrained_on\tpositives\theld_out_accuracy\theld_out")
    for label, model in sorted(verifier.labels.items()):
        accuracy = "n/a" if model.held_out_accuracy is None else f"{model.held_out_accuracy:.1%}"
        note = "" if model.weights is not None else "\t(one class only: keeps every box)"
        typer.echo(f"{label}\t{model.trained_on}\t{model.positives}\t{accuracy}\t{model.held_out}{note}")
    typer.echo(f"verifier {verifier.name!r}: {target}")


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@review_app.command("serve")
def review_serve(
    review_set: SetPath,
    features_file: Annotated[
        Path | None,
        typer.Option("--features", help="Parquet file from `prelabel features`; without: by detector score."),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Review this label only (default: all, in turn).")
    ] = None,
    strategy: Strategy = "entropy",
    target: Target = "yes",
    seed: Seed = 0,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; other than loopback needs a token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="PRELABEL_REVIEW_TOKEN",
            help="One token for everyone, required on every request (open "
            "http://HOST:PORT/?token=...); prefer PRELABEL_REVIEW_TOKEN.",
        ),
    ] = None,
    reviewers: Annotated[
        Path | None,
        typer.Option("--reviewers", help="A file of name,token[,lead] lines: a token per reviewer."),
    ] = None,
    leads: Annotated[
        list[str] | None, typer.Option("--lead", help="A reviewer who may correct others (repeatable).")
    ] = None,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """The review page: keys A/Left = no, D/Right = yes, S = skip, Backspace = undo, R = retry image.

    Example: prelabel review serve --set cars.sqlite --features cars.dinov2.parquet
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
