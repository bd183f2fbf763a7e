"""The labeling-config reference: which tags a prediction fills, and which ``pull`` and
``quality`` read back. The yes/no columns come from the code that decides it; a tag without
a description here stops the page from being generated."""

from __future__ import annotations

from prelabel.core.errors import LabelConfigError
from prelabel.labelstudio.config import CONTROL_TAGS, parse_label_config
from prelabel.labelstudio.regions import EXPORTED_TYPES
from prelabel.labelstudio.targets import fillable_controls
from prelabel.quality.matching import MEASURED_TYPES
from prelabel.video.regions import video_controls
from prelabel_cli.reference.markdown import GENERATED, code, table

__all__ = ["tags_page"]

# (tag, attributes) -> what a prediction puts there. Every tag of CONTROL_TAGS needs a row.
_PREDICTED = {
    ("RectangleLabels", ""): "The detection's box; a rotated rectangle when the detection has a "
    "4-point polygon (an OCR line).",
    ("BrushLabels", ""): "The detection's mask.",
    ("PolygonLabels", ""): "The detection's polygon, else its mask's outer rings simplified to "
    "`--polygon-tolerance` pixels, one region per part.",
    ("KeyPointLabels", ""): "Each keypoint whose name the control has, linked to its detection's "
    "rectangle (`parentID`).",
    ("Choices", ""): 'The image\'s choices the control has: the best one, or all with `choice="multiple"`.',
    ("Choices", 'perRegion="true"'): "Each detection's region choices, on its rectangle, brush or polygon.",
    ("TextArea", 'perRegion="true"'): "The detection's text (an OCR transcription), on its rectangle.",
    ("TextArea", ""): "Never filled: a task-wide text area is the annotator's.",
    ("Labels", ""): "Never filled: text spans, not image regions.",
    ("VideoRectangle", ""): "On a `<Video>`: each track of a video model (`sam3-video`, `detect-track`) "
    "as one region, keyframes thinned so Label Studio's interpolation stays on the track (see the "
    "video guide); `pull --format mot` and `quality` read it back.",
}
_VIDEO = (
    '<View><Video name="video" value="$video"/><Labels name="label" toName="video"><Label value="a"/>'
    '</Labels><VideoRectangle name="c" toName="video"/></View>'
)


def _config(tag: str, attributes: str) -> str:
    option = '<Choice value="a"/>' if tag == "Choices" else "" if tag == "TextArea" else '<Label value="a"/>'
    control = f'<{tag} name="c" toName="image" {attributes}>{option}</{tag}>'
    return f'<View><Image name="image" value="$image"/>{control}</View>'


def _video_filled() -> bool:
    """Whether video tracks find their control in a ``<Video>`` project's config."""
    try:
        video_controls(parse_label_config(_VIDEO))
    except LabelConfigError:
        return False
    return True


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def tags_page() -> str:
    """One row per control tag (and its per-region form where that differs)."""
    missing = set(CONTROL_TAGS) - {tag for tag, _ in _PREDICTED}
    if missing:
        raise ValueError(f"describe what a prediction puts in {sorted(missing)} (reference/tags.py)")
    rows = []
    for (tag, attributes), what in _PREDICTED.items():
        filled = (
            _video_filled()
            if tag == "VideoRectangle"
            else bool(fillable_controls(parse_label_config(_config(tag, attributes))))
        )
        kind = tag.lower()
        shown = f"<{tag} {attributes}>" if attributes else f"<{tag}>"
        read_back = kind in EXPORTED_TYPES or kind == "videorectangle"  # videos: pull --format mot
        measured = kind in MEASURED_TYPES or kind in {"choices", "textarea", "videorectangle"}
        rows.append([code(shown), _yes(filled), what, _yes(read_back), _yes(measured)])
    return (
        "# Labeling-config tags\n\n" + GENERATED + "\n"
        "What prelabel does with each control tag of a project's labeling config on an `<Image>`. "
        "**Predicted**: `run`, `post` and `convert` fill it. **Pulled**: `pull` writes it to COCO "
        "JSON and Parquet/CSV. **Measured**: `quality` scores predictions of it against what people "
        "kept (regions by IoU or distance, choices by accuracy, texts by character error rate). "
        "Other result types are counted by type, never dropped in silence.\n\n"
        + table(["tag", "predicted", "what a prediction puts there", "pulled", "measured"], rows)
    )
