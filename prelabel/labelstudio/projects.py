"""Set projects up and look at them: a labeling config prelabel can fill, and a summary.

``build_label_config`` writes the config ``prelabel project create`` uses: one image, the
region tools asked for (they share the labels, so a box and a mask of ``car`` are the same
category), keypoints, task or per-region choices and a per-region text area, with the tag
names prelabel's predictions fill (``label``, ``mask``, ``transcription``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from xml.sax.saxutils import quoteattr

from prelabel.core.errors import LabelConfigError
from prelabel.labelstudio.config import ControlTag, parse_label_config

if TYPE_CHECKING:  # the client is passed in: the command line reads TOOLS without loading it
    from prelabel.labelstudio.client import LabelStudioClient

__all__ = ["TOOLS", "ProjectSummary", "build_label_config", "build_video_config", "project_summary"]

Tool = Literal["box", "mask", "polygon"]
TOOLS: dict[str, tuple[str, str]] = {
    "box": ("RectangleLabels", "label"),
    "mask": ("BrushLabels", "mask"),
    "polygon": ("PolygonLabels", "polygon"),
}


def build_label_config(
    labels: Sequence[str],
    tools: Sequence[str] = ("box",),
    *,
    keypoints: Sequence[str] = (),
    choices: Sequence[str] = (),
    choices_per_region: bool = False,
    text: bool = False,
) -> str:
    """A labeling config (XML) for these labels and tools; it is parsed back as a check."""
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        raise LabelConfigError(f"unknown tool {unknown[0]!r}; choose from {', '.join(TOOLS)}")
    for kind, names in (("label", labels), ("keypoint", keypoints), ("choice", choices)):
        if len(set(names)) != len(names) or any(not n.strip() for n in names):
            raise LabelConfigError(f"{kind} names must be non-empty and distinct, got {list(names)}")
    if tools and not labels:
        raise LabelConfigError("region tools need labels, e.g. --labels car,person")
    if not tools and not keypoints and not choices and not text:
        raise LabelConfigError(
            "nothing to label: give --tools with --labels, --keypoints, --choices or --text"
        )
    if choices_per_region and not choices:
        raise LabelConfigError("--choices-per-region needs --choices")
    lines = ["<View>", '  <Image name="image" value="$image" zoom="true"/>']
    for tool in dict.fromkeys(tools):
        kind, name = TOOLS[tool]
        lines += [f'  <{kind} name="{name}" toName="image">', *_options("Label", labels), f"  </{kind}>"]
    if keypoints:
        lines += [
            '  <KeyPointLabels name="keypoints" toName="image">',
            *_options("Label", keypoints),
            "  </KeyPointLabels>",
        ]
    if choices:
        where = ' perRegion="true"' if choices_per_region else ""
        lines += [
            f'  <Choices name="choice" toName="image"{where}>',
            *_options("Choice", choices),
            "  </Choices>",
        ]
    if text:
        lines.append('  <TextArea name="transcription" toName="image" perRegion="true" editable="true"/>')
    xml = "\n".join([*lines, "</View>"])
    parse_label_config(xml)
    return xml


def build_video_config(labels: Sequence[str]) -> str:
    """A labeling config for tracking these labels through videos: ``<Video>`` counting frames at
    each task's own rate (``$fps``, which prelabel's video imports set), ``<Labels>`` and a
    ``<VideoRectangle>``; parsed back as a check."""
    if not labels or len(set(labels)) != len(labels) or any(not n.strip() for n in labels):
        raise LabelConfigError(
            f"video tracks need distinct, non-empty labels, e.g. --labels car,person; got {list(labels)}"
        )
    xml = "\n".join(
        [
            "<View>",
            '  <Video name="video" value="$video" frameRate="$fps"/>',
            '  <Labels name="label" toName="video">',
            *_options("Label", labels),
            "  </Labels>",
            '  <VideoRectangle name="box" toName="video"/>',
            "</View>",
        ]
    )
    parse_label_config(xml).video  # noqa: B018  (exactly one <Video>, or a clear error)
    return xml


def _options(tag: str, values: Sequence[str]) -> list[str]:
    return [f"    <{tag} value={quoteattr(v)}/>" for v in values]


@dataclass(frozen=True)
class ProjectSummary:
    """What a project holds: its controls, task and annotation counts, predictions by version."""

    id: int
    title: str
    controls: tuple[ControlTag, ...]
    tasks: int
    annotations: int
    model_version: str = ""
    predictions: dict[str, int] = field(default_factory=dict)


def project_summary(client: LabelStudioClient, project_id: int) -> ProjectSummary:
    """Counts from the project itself (no task listing), predictions from its model versions."""
    data = client.request_json("GET", f"/api/projects/{project_id}/")
    return ProjectSummary(
        id=int(data["id"]),
        title=str(data.get("title") or ""),
        controls=parse_label_config(str(data.get("label_config") or "")).controls,
        tasks=int(data.get("task_number") or 0),
        annotations=int(data.get("total_annotations_number") or 0),
        model_version=str(data.get("model_version") or ""),
        predictions=client.model_versions(project_id),
    )
