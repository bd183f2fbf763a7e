"""A Label Studio labeling config, parsed safely into what prediction building needs.

Parsing goes through defusedxml: DTDs, entity expansion and external entities are
refused, so a hostile config cannot read files or blow up memory.

Labels are read as Label Studio reads them: a control's ``<Label>``/``<Choice>`` options
anywhere inside it (nested ``<View>``s too), in order; ``hotkey``, ``background`` and the
other display attributes change nothing a prediction carries. An option with an ``alias``
is stored in results as its alias (the frontend writes ``alias or value``, and the backend
accepts only that when it validates a prediction), so ``ControlTag.result_label`` gives what
a result carries and ``ControlTag.label_of`` maps a stored value back. ``visibleWhen`` (on a
control or on a ``<View>`` around it) is kept as ``Condition``s: a control shown only under a
condition is filled only where Label Studio would show it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from prelabel.core.errors import LabelConfigError

__all__ = ["CONTROL_TAGS", "Condition", "ControlTag", "LabelConfig", "ObjectTag", "parse_label_config"]

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
class Condition:
    """One ``visibleWhen`` rule (Label Studio's Visibility mixin): ``when`` is region-selected,
    no-region-selected, choice-selected or choice-unselected; ``tag`` the ``whenTagName``;
    ``values`` the ``whenLabelValue`` (region-selected) or ``whenChoiceValue`` list."""

    when: str
    tag: str = ""
    values: tuple[str, ...] = ()

    def shows_region(self, control: str, stored: str) -> bool:
        """Whether a region of ``control`` whose result stores the label ``stored`` shows a
        per-region control under this rule (the frontend's region-selected test)."""
        if self.when != "region-selected":
            return False
        return (not self.tag or self.tag == control) and (not self.values or stored in self.values)


@dataclass(frozen=True, slots=True)
class ControlTag:
    """One control: ``name`` (the result's from_name), ``to_name``, its labels in order.

    ``multiple``: the control takes several labels at once (``choice="multiple"``, as
    Choices say it); otherwise one. ``aliases``: label -> the alias results store for it.
    ``shown_when``: the ``visibleWhen`` rules of the control and of the Views around it (all
    must hold).
    """

    kind: ControlKind
    name: str
    to_name: str
    labels: tuple[str, ...]
    per_region: bool = False
    multiple: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict, hash=False)
    shown_when: tuple[Condition, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The labels, then their aliases: every name a label map may target."""
        return (*self.labels, *(a for a in self.aliases.values() if a not in self.labels))

    def result_label(self, label: str) -> str:
        """What a result stores for ``label``: its alias when it has one."""
        return self.aliases.get(label, label)

    def label_of(self, stored: str) -> str | None:
        """The label a stored value (or a name from ``names``) means; None when the control
        has none (the frontend's ``findLabel``: the first option whose alias or value it is)."""
        return next((label for label in self.labels if stored in (label, self.aliases.get(label))), None)

    @property
    def always_shown(self) -> bool:
        """Shown whatever is selected (no rule, or only "no region selected", which a
        task-level control is shown under)."""
        return all(c.when == "no-region-selected" for c in self.shown_when)

    def shows_region(self, control: str, stored: str) -> bool:
        """Whether this per-region control is shown for a region of ``control`` storing ``stored``."""
        return all(c.shows_region(control, stored) for c in self.shown_when)

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
        return tuple(
            dict.fromkeys(
                label
                for c in self.controls
                if c.kind == "Labels" and c.to_name == target
                for label in c.labels
            )
        )

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

    @property
    def image_choices_control(self) -> ControlTag | None:
        """The image's first task-level Choices that is always shown (one shown only when another
        choice is selected is an annotator's follow-up question, not the image's class)."""
        return next((c for c in self.choice_controls(per_region=False) if c.always_shown), None)

    def choice_controls(self, per_region: bool) -> list[ControlTag]:
        """The image's Choices controls of that kind (task-level or per-region), in order."""
        target = self.image.name
        return [
            c
            for c in self.controls
            if c.kind == "Choices" and c.to_name == target and c.per_region == per_region
        ]

    def _choices(self, per_region: bool) -> tuple[str, ...]:
        return tuple(dict.fromkeys(label for c in self.choice_controls(per_region) for label in c.labels))

    @property
    def media(self) -> ObjectTag:
        """What predictions attach to: the single Image, or the single Video of a video project."""
        kinds = {o.kind for o in self.objects}
        return self.video if "Video" in kinds and "Image" not in kinds else self.image

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label of the media's controls (regions, keypoints, choices), in config order."""
        target = self.media.name
        return tuple(dict.fromkeys(n for c in self.controls if c.to_name == target for n in c.labels))

    @property
    def label_names(self) -> tuple[str, ...]:
        """The labels, then their aliases: every name a label map may target."""
        target = self.media.name
        aliases = (a for c in self.controls if c.to_name == target for a in c.aliases.values())
        return tuple(dict.fromkeys((*self.labels, *aliases)))

    def stored_label(self, control: str, stored: str) -> str:
        """The label a result of ``control`` that stores ``stored`` means (an alias mapped back;
        a value the control lacks, or a control the config lacks, as it is)."""
        found = next((c for c in self.controls if c.name == control), None)
        label = None if found is None else found.label_of(stored)
        return stored if label is None else label

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
    for element, shown_when in _walk(root):
        tag = element.tag
        if tag in _OBJECT_TAGS:
            value = element.get("value", "")
            # Label Studio reads attribute names in any case (frameRate, framerate)
            rate = next((v for k, v in element.attrib.items() if k.lower() == "framerate"), "")
            objects.append(
                ObjectTag(
                    kind=tag,
                    name=element.get("name", ""),
                    data_key=value.lstrip("$"),
                    frame_rate=rate.strip(),
                )
            )
        elif tag in CONTROL_TAGS:
            controls.append(_control(element, tag, shown_when))
    return LabelConfig(controls=tuple(controls), objects=tuple(objects))


def _walk(root: Any) -> Iterator[tuple[Any, tuple[Condition, ...]]]:
    """Every element in document order, with the visibility rules of it and its ancestors
    (iterative: a deeply nested config is no recursion error)."""
    stack: list[tuple[Any, tuple[Condition, ...]]] = [(root, ())]
    while stack:
        element, above = stack.pop()
        rule = _condition(element)
        rules = (*above, rule) if rule is not None else above
        yield element, rules
        stack.extend((child, rules) for child in reversed(element))


def _condition(element: Any) -> Condition | None:
    """An element's ``visibleWhen`` rule (a ``whenChoiceValue`` alone means choice-selected)."""
    when, choice = element.get("visibleWhen"), element.get("whenChoiceValue")
    if not when and not choice:
        return None
    when = when or "choice-selected"
    listed = element.get("whenLabelValue") if when == "region-selected" else choice
    values = tuple(v for v in (listed or "").split(",") if v)
    return Condition(when, element.get("whenTagName") or "", values)


def _control(element: Any, tag: ControlKind, shown_when: tuple[Condition, ...]) -> ControlTag:
    name, to_name = element.get("name"), element.get("toName")
    if not name or not to_name:
        raise LabelConfigError(f"<{tag}> needs both name and toName attributes")
    labels: list[str] = []
    aliases: dict[str, str] = {}
    for option in element.iter(_OPTION_TAG.get(tag, "Label")):
        value, alias = option.get("value"), option.get("alias")
        label = value if value is not None else alias  # Label Studio keeps an option with either
        if label is None:
            continue
        labels.append(label)
        if alias and alias != label:
            aliases[label] = alias
    return ControlTag(
        kind=tag,
        name=name,
        to_name=to_name.split(",")[0],
        labels=tuple(labels),
        per_region=element.get("perRegion", "false").lower() == "true",
        multiple=element.get("choice", "single").lower() == "multiple",
        aliases=aliases,
        shown_when=shown_when,
    )
