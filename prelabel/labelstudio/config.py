"""A Label Studio labeling config, parsed safely into what prediction building needs.

Parsing goes through defusedxml: DTDs, entity expansion and external entities are
refused, so a hostile config cannot read files or blow up memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from prelabel.errors import LabelConfigError

__all__ = ["CONTROL_TAGS", "ControlTag", "LabelConfig", "ObjectTag", "parse_label_config"]

ControlKind = Literal[
    "RectangleLabels",
    "BrushLabels",
    "PolygonLabels",
    "KeyPointLabels",
    "Labels",
    "Choices",
    "TextArea",
    "VideoRectangle",
]
CONTROL_TAGS: tuple[ControlKind, ...] = get_args(ControlKind)
_OPTION_TAG = {"Choices": "Choice"}
_OBJECT_TAGS = ("Image", "Video")


@dataclass(frozen=True, slots=True)
class ControlTag:
    """One control: ``name`` (the result's from_name), ``to_name``, its labels in order.

    ``multiple``: the control takes several labels at once (``choice="multiple"``, as
    Choices say it); otherwise one.
    """

    kind: ControlKind
    name: str
    to_name: str
    labels: tuple[str, ...]
    per_region: bool = False
    multiple: bool = False

    @property
    def result_type(self) -> str:
        """The ``type`` of a result this control produces, e.g. ``rectanglelabels``."""
        return self.kind.lower()

    @property
    def tag(self) -> str:
        """How a report names the control, e.g. ``<PolygonLabels name="polygon">``."""
        return f'<{self.kind} name="{self.name}">'


@dataclass(frozen=True, slots=True)
class ObjectTag:
    """An object tag such as ``<Image name="image" value="$image"/>``.

    ``frame_rate``: a ``<Video>``'s ``frameRate`` as written (a number, or ``$key`` of the task
    data; '' when absent: the frontend then counts 24 frames a second)."""

    kind: str
    name: str
    data_key: str
    frame_rate: str = ""


@dataclass(frozen=True)
class LabelConfig:
    """The controls and images of a labeling config."""

    controls: tuple[ControlTag, ...]
    objects: tuple[ObjectTag, ...]

    @property
    def image(self) -> ObjectTag:
        """The single Image tag predictions attach to."""
        images = [o for o in self.objects if o.kind == "Image"]
        if not images:
            raise LabelConfigError("the labeling config has no <Image> tag to attach predictions to")
        if len(images) > 1:
            names = ", ".join(o.name for o in images)
            raise LabelConfigError(f"the labeling config has several <Image> tags ({names}); name one")
        return images[0]

    @property
    def video(self) -> ObjectTag:
        """The single Video tag tracks attach to."""
        videos = [o for o in self.objects if o.kind == "Video"]
        if len(videos) != 1:
            found = (
                f"several <Video> tags ({', '.join(o.name for o in videos)})" if videos else "no <Video> tag"
            )
            raise LabelConfigError(f"the labeling config has {found}; video tracks need exactly one")
        return videos[0]

    @property
    def video_labels(self) -> tuple[str, ...]:
        """The labels of the video's ``<Labels>`` controls (a track's label), in order."""
        target = self.video.name
        return tuple(dict.fromkeys(
            label for c in self.controls if c.kind == "Labels" and c.to_name == target for label in c.labels
        ))  # fmt: skip

    @property
    def region_labels(self) -> tuple[str, ...]:
        """The labels of the image's region controls (boxes, masks, polygons, keypoints), in order."""
        target = self.image.name
        kinds = ("RectangleLabels", "BrushLabels", "PolygonLabels", "KeyPointLabels")
        controls = [c for c in self.controls if c.kind in kinds and c.to_name == target]
        return tuple(dict.fromkeys(label for c in controls for label in c.labels))

    @property
    def image_choices(self) -> tuple[str, ...]:
        """The choices that classify the whole image (Choices on the image, not per region)."""
        return self._choices(per_region=False)

    @property
    def region_choices(self) -> tuple[str, ...]:
        """The choices that classify each region (``perRegion`` Choices on the image)."""
        return self._choices(per_region=True)

    def choices_control(self, per_region: bool) -> ControlTag | None:
        """The image's first Choices control of that kind (task-level or per-region)."""
        return next((c for c in self._choice_controls() if c.per_region == per_region), None)

    def _choice_controls(self) -> list[ControlTag]:
        target = self.image.name
        return [c for c in self.controls if c.kind == "Choices" and c.to_name == target]

    def _choices(self, per_region: bool) -> tuple[str, ...]:
        controls = [c for c in self._choice_controls() if c.per_region == per_region]
        return tuple(dict.fromkeys(label for c in controls for label in c.labels))

    def find(self, kind: ControlKind, to_name: str | None = None) -> ControlTag | None:
        """The first control of ``kind`` attached to ``to_name`` (default: the image)."""
        target = to_name or self.image.name
        for control in self.controls:
            if control.kind == kind and control.to_name == target:
                return control
        return None

    def require(self, kind: ControlKind, purpose: str) -> ControlTag:
        """Like :meth:`find`, but a missing control is an error that says what to add."""
        control = self.find(kind)
        if control is None:
            image = self.image.name
            raise LabelConfigError(
                f"{purpose} needs a <{kind}> control on image {image!r}; add e.g. "
                f'<{kind} name="{kind.lower().removesuffix("labels")}" toName="{image}">'
                f'<Label value="..."/></{kind}> to the labeling config'
            )
        return control


def parse_label_config(xml: str) -> LabelConfig:
    """Parse a labeling config's XML; malformed or unsafe XML raises LabelConfigError."""
    if not xml or not xml.strip():
        raise LabelConfigError("the labeling config is empty")
    try:
        root = ElementTree.fromstring(xml, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise LabelConfigError(f"the labeling config uses forbidden XML ({exc})") from exc
    except ElementTree.ParseError as exc:
        raise LabelConfigError(f"the labeling config is not well-formed XML ({exc})") from exc

    controls: list[ControlTag] = []
    objects: list[ObjectTag] = []
    for element in root.iter():
        tag = element.tag
        if tag in _OBJECT_TAGS:
            value = element.get("value", "")
            # Label Studio reads attribute names in any case (frameRate, framerate)
            rate = next((v for k, v in element.attrib.items() if k.lower() == "framerate"), "")
            objects.append(ObjectTag(kind=tag, name=element.get("name", ""), data_key=value.lstrip("$"),
                                     frame_rate=rate.strip()))  # fmt: skip
        elif tag in CONTROL_TAGS:
            name, to_name = element.get("name"), element.get("toName")
            if not name or not to_name:
                raise LabelConfigError(f"<{tag}> needs both name and toName attributes")
            option = _OPTION_TAG.get(tag, "Label")
            labels = tuple(
                child.get("value", "") for child in element.iter(option) if child.get("value") is not None
            )
            controls.append(
                ControlTag(
                    kind=tag,
                    name=name,
                    to_name=to_name.split(",")[0],
                    labels=labels,
                    per_region=element.get("perRegion", "false").lower() == "true",
                    multiple=element.get("choice", "single").lower() == "multiple",
                )
            )
    return LabelConfig(controls=tuple(controls), objects=tuple(objects))
