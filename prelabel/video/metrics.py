"""How well a model version's tracks match people's, per label: MOTA, IDF1 and HOTA.

The metrics are motrics' (CLEAR, Identity and HOTA as TrackEval defines them; its results
are checked against TrackEval's own). A label's videos are evaluated as one sequence, one
video after another with identities kept apart, which gives what TrackEval's combination
of sequences gives: CLEAR and Identity counts add up, and HOTA's association is averaged
over all true positives. Boxes are matched at ``iou`` (CLEAR, Identity); HOTA sweeps its
own thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prelabel.core.errors import SettingsError
from prelabel.video.mot import MotRow

__all__ = ["TrackScore", "VideoPair", "track_scores"]


@dataclass(frozen=True)
class VideoPair:
    """One video's people's boxes and the model's, over its ``frames`` frames."""

    name: str
    people: Sequence[MotRow]
    model: Sequence[MotRow]
    frames: int


@dataclass(frozen=True)
class TrackScore:
    """One label over the videos: identities, boxes and the three metrics (None without people's boxes)."""

    label: str
    videos: int
    people_tracks: int
    model_tracks: int
    people_boxes: int
    model_boxes: int
    mota: float | None
    idf1: float | None
    hota: float | None
    deta: float | None
    assa: float | None
    id_switches: int
    false_positives: int
    misses: int


def track_scores(pairs: Sequence[VideoPair], iou: float = 0.5) -> list[TrackScore]:
    """A score per label found on either side (labels in first-seen order)."""
    try:
        import motrics
    except ImportError as exc:
        raise SettingsError("track metrics need motrics: pip install 'prelabel[video]'") from exc
    labels = list(dict.fromkeys(r.label for p in pairs for side in (p.people, p.model) for r in side))
    scores = []
    for label in labels:
        gt_ids: list[list[int]] = []
        gt_boxes: list[list[list[float]]] = []
        dt_ids: list[list[int]] = []
        dt_boxes: list[list[list[float]]] = []
        tracks = [set(), set()]  # type: list[set[tuple[int, int]]]
        videos = 0
        for n, pair in enumerate(pairs):
            people = [r for r in pair.people if r.label == label]
            model = [r for r in pair.model if r.label == label]
            if not people and not model:
                continue
            videos += 1
            offset = len(gt_ids)
            for side, rows, ids, boxes in ((0, people, gt_ids, gt_boxes), (1, model, dt_ids, dt_boxes)):
                ids.extend([] for _ in range(pair.frames - (len(ids) - offset)))
                boxes.extend([] for _ in range(pair.frames - (len(boxes) - offset)))
                for r in rows:
                    if 1 <= r.frame <= pair.frames:
                        ids[offset + r.frame - 1].append(n * 1_000_000 + r.track)
                        boxes[offset + r.frame - 1].append([r.x, r.y, r.w, r.h])
                        tracks[side].add((n, r.track))
        people_boxes, model_boxes = sum(map(len, gt_ids)), sum(map(len, dt_ids))
        if not people_boxes:
            nothing = (None, None, None, None, None)
            scores.append(
                TrackScore(
                    label, videos, len(tracks[0]), len(tracks[1]), 0, model_boxes, *nothing, 0, model_boxes, 0
                )
            )
            continue
        result = motrics.evaluate(
            motrics.Frames(ids=gt_ids, boxes=gt_boxes),
            motrics.Frames(ids=dt_ids, boxes=dt_boxes),
            iou_threshold=iou,
            box_format="xywh",
        )
        clear, identity, hota = result.clear, result.identity, result.hota
        scores.append(
            TrackScore(
                label,
                videos,
                len(tracks[0]),
                len(tracks[1]),
                people_boxes,
                model_boxes,
                float(clear.mota),
                float(identity.idf1),
                float(hota.hota),
                float(hota.deta),
                float(hota.assa),
                int(clear.num_switches),
                int(clear.num_false_positives),
                int(clear.num_misses),
            )
        )
    return scores
