"""A PNG chart per label: precision, recall, F1, AP50 and AP as bars on one 0-1 scale
(keypoints, which have no AP: precision, recall and F1, and their mean error in the title)."""

from __future__ import annotations

import io
from pathlib import Path

from prelabel.core.atomic import atomic_write
from prelabel.quality.matching import KEYPOINTS
from prelabel.quality.metrics import LabelScore

__all__ = ["CHART_SIZE", "write_label_chart"]

CHART_SIZE = (480, 320)
"""Width and height of every chart, in pixels."""
_DPI = 100


def write_label_chart(path: Path, score: LabelScore) -> Path:
    """Draw ``score`` into ``path`` (written atomically); an undefined value is an empty bar marked n/a.

    A bare ``Figure`` on the Agg canvas: no pyplot, so no global state shared between threads.
    Imported here: matplotlib takes a while to import, and every command line imports this package."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(CHART_SIZE[0] / _DPI, CHART_SIZE[1] / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    names = ["precision", "recall", "F1", "AP50", "AP"]
    values = [score.precision, score.recall, score.f1, score.ap50, score.ap]
    title = f"{score.label} ({score.kind}): TP {score.tp}, FP {score.fp}, FN {score.fn}"
    if score.kind == KEYPOINTS:
        names, values = names[:3], values[:3]
        error = score.mean_error_px
        title += ", mean error " + ("n/a" if error is None else f"{error:.1f} px")
    colors = ["#4363d8", "#3cb44b", "#911eb4", "#f58231", "#e6194b"][: len(names)]
    bars = axes.bar(names, [v or 0.0 for v in values], color=colors)
    for bar, value in zip(bars, values, strict=True):
        text = "n/a" if value is None else f"{value:.2f}"
        axes.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    axes.set_ylim(0, 1.1)
    axes.set_title(title, fontsize=9, parse_math=False)  # a label is text: "$x^$" is no formula
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    atomic_write(path, buffer.getvalue())
    return path
