"""``prelabel project create|show``: set a project up from the command line, and look at one.

One API call each, so no flow: nothing to retry per item, nothing to record as a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prelabel.core.errors import PrelabelError
from prelabel.labelstudio.backends import list_backends
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.projects import TOOLS, build_label_config, build_video_config, project_summary
from prelabel_cli.checks import label_studio
from prelabel_cli.options import BASICS, ApiKey, LsUrl, use_api_key

__all__ = ["project_create", "project_show"]

project_app = typer.Typer(
    help="""Create a Label Studio project prelabel can fill, or show what a project holds.

    Example:

    prelabel project show 3
    """,
    no_args_is_help=True,
)


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


@project_app.command("create")
def project_create(
    title: Annotated[
        str, typer.Option("--title", rich_help_panel=BASICS, help="Project title (3 characters or more).")
    ],
    labels: Annotated[
        str | None, typer.Option("--labels", rich_help_panel=BASICS, help="Region labels, e.g. car,person.")
    ] = None,
    tools: Annotated[
        str,
        typer.Option(
            "--tools", rich_help_panel=BASICS, help=f"Region tools sharing the labels: {','.join(TOOLS)}."
        ),
    ] = "box",
    keypoints: Annotated[
        str | None,
        typer.Option(
            "--keypoints", rich_help_panel=BASICS, help="Keypoint names (nose,left_eye,...) or coco-17."
        ),
    ] = None,
    choices: Annotated[
        str | None, typer.Option("--choices", rich_help_panel=BASICS, help="Choices, e.g. street,indoor.")
    ] = None,
    choices_per_region: Annotated[
        bool,
        typer.Option(
            "--choices-per-region", rich_help_panel=BASICS, help="Choices per region, not per task."
        ),
    ] = False,
    text: Annotated[
        bool,
        typer.Option(
            "--text", rich_help_panel=BASICS, help="A text area per region (e.g. OCR transcriptions)."
        ),
    ] = False,
    label_config: Annotated[
        Path | None,
        typer.Option(
            "--label-config", rich_help_panel=BASICS, help="Use this labeling config XML file instead."
        ),
    ] = None,
    video: Annotated[
        bool,
        typer.Option(
            "--video",
            rich_help_panel=BASICS,
            help="A video project: every object of --labels tracked as a box.",
        ),
    ] = False,
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Create a Label Studio project with a labeling config prelabel can fill; print its id.

    Examples:

    prelabel project create --title Streets --labels car,person --tools box,mask

    prelabel project create --title People --labels person --keypoints coco-17 --choices day,night

    prelabel project create --title Traffic --labels car,person --video
    """
    from prelabel.records import COCO_KEYPOINTS

    if len(title.strip()) < 3:
        raise PrelabelError("--title needs at least 3 characters (Label Studio's rule)")
    if label_config is not None:
        if labels or keypoints or choices or text or choices_per_region:
            raise PrelabelError(
                "--label-config replaces --labels/--keypoints/--choices/--text; give one or the other"
            )
        if not label_config.is_file():
            raise PrelabelError(f"--label-config {label_config}: no such file")
        xml = label_config.read_text()
        parsed = parse_label_config(xml)
        parsed.video if video else parsed.image  # noqa: B018  (one <Image> or <Video> tag, or a clear error)
    elif video:
        if keypoints or choices or text or choices_per_region or tools != "box":
            raise PrelabelError(
                "--video tracks boxes of --labels; --tools, --keypoints, --choices and --text are "
                "for image projects"
            )
        xml = build_video_config(_names(labels))
    else:
        names = COCO_KEYPOINTS if (keypoints or "").strip() == "coco-17" else _names(keypoints)
        xml = build_label_config(
            _names(labels),
            _names(tools),
            keypoints=names,
            choices=_names(choices),
            choices_per_region=choices_per_region,
            text=text,
        )
    use_api_key(api_key, ls_url)
    with label_studio(ls_url) as client:
        project = client.create_project(title.strip(), xml)
    typer.echo(
        f"created project {project.id} ({project.title}): {client.url}/projects/{project.id}", err=True
    )
    typer.echo(project.id)


@project_app.command("show")
def project_show(
    project_id: Annotated[int, typer.Argument(min=1, help="Label Studio project id.")],
    ls_url: LsUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Show a project's tags and labels, tasks, annotations, predictions per model version, ML backends.

    Example:

    prelabel project show 3
    """
    use_api_key(api_key, ls_url)
    with label_studio(ls_url, project_id) as client:
        summary = project_summary(client, project_id)
        backends = list_backends(client, project_id)
    typer.echo(f"project {summary.id}: {summary.title}")
    for control in summary.controls:
        where = " per region" if control.per_region else ""
        typer.echo(f"  <{control.kind} name={control.name!r}>{where}: {', '.join(control.labels) or '-'}")
    typer.echo(f"tasks: {summary.tasks}   annotations: {summary.annotations}")
    shown = f" (shown to annotators: {summary.model_version})" if summary.model_version else ""
    typer.echo(f"predictions{shown}:" if summary.predictions else "predictions: none")
    for version, count in sorted(summary.predictions.items()):
        typer.echo(f"  {version}: {count}")
    typer.echo("ML backends:" if backends else "ML backends: none (prelabel project connect)")
    for backend in backends:
        kind = ", interactive" if backend.interactive else ""
        typer.echo(
            f"  {backend.id}: {backend.url} ({backend.state.lower()}{kind}), model version "
            f"{backend.model_version or '-'}"
        )
