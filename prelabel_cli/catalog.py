"""Commands that list or write what ships with prelabel: models, sample files, the version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from prelabel import __version__
from prelabel_cli.options import BASICS, renamed

__all__ = ["models", "samples", "version"]


# This module's top-level commands; ``prelabel_cli.app`` adds them to ``prelabel`` in help order.
commands = typer.Typer()


@commands.command(cls=renamed(out="--output-dir"), rich_help_panel="Information")
def samples(
    output_dir: Annotated[
        Path,
        typer.Option(
            "--output-dir", rich_help_panel=BASICS, help="Folder to write the sample images and files into."
        ),
    ],
) -> None:
    """Write sample images with their raw prediction files, a labeling config and a label map, to
    try the commands on.

    Examples:

    prelabel samples --output-dir demo

    prelabel convert --input-dir demo --config demo/labeling.xml --label-map demo/label_map.json
    """
    from prelabel.core.atomic import atomic_write
    from prelabel.ingest.samples import LABEL_CONFIG, make_samples
    from prelabel.records import save_raw_file

    made = make_samples()
    for sample in made:
        atomic_write(output_dir / sample.name, sample.data)
        save_raw_file(output_dir / f"{Path(sample.name).stem}_dinox_preannot.json", sample.detections)
    atomic_write(output_dir / "labeling.xml", LABEL_CONFIG)
    atomic_write(output_dir / "label_map.json", json.dumps({"car": "civilian vehicle"}, indent=2))
    typer.echo(f"wrote {len(made)} sample images, raw files, labeling.xml and label_map.json to {output_dir}")


@commands.command(rich_help_panel="Information")
def models() -> None:
    """List the models, the task types they serve and what they need, and how to chain them.

    Examples:

    prelabel models

    prelabel run --input-dir photos --project-id 3 --model detr+vitpose --model-option vitpose.threshold=0.3
    """
    from prelabel.predict.models import available_models
    from prelabel.predict.models.registry import adapter_class

    refiners = []
    for name, types in available_models().items():
        cls = adapter_class(name)
        role = "" if cls.detects else " (after a detector)"
        needs = f"; needs {cls.needs}" if cls.needs else ""
        typer.echo(f"{name}: {', '.join(types)}{role}{needs}")
        if cls.refines:
            refiners.append(name)
    typer.echo(
        f"chains: a detector, then {', '.join(refiners)} on its detections, joined by +, e.g. "
        f"detr+vitpose+siglip; options per part: --model-option vitpose.threshold=0.3"
    )


@commands.command(rich_help_panel="Information")
def version() -> None:
    """Print the prelabel version (as `prelabel --version` does).

    Example:

    prelabel version
    """
    typer.echo(__version__)
