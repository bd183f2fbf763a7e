"""Identities across keyframes: detections matched to propagated boxes by IoU, greedy and one to
one; moving shapes keep their ids while the tracker follows them (property-based), a shape that
jumps further than the IoU allows is a new track, a missed one lives ``patience`` keyframes."""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prelabel.video.identities import Identities, iou_matrix, match_boxes
from prelabel.video.keyframes import box_iou_xywh
from tests.support.videos import Shape

A, B = [0, 0, 10, 10], [20, 0, 30, 10]


@pytest.mark.parametrize(
    ("tracked", "detected", "pairs"),
    [
        ([], [], []),  # nothing on either side
        ([A], [], []),  # no detection
        ([], [A], []),  # no live track
        ([A, B], [B, A], [(0, 1), (1, 0)]),  # order does not matter, overlap does
        ([A], [[0, 0, 10, 20]], [(0, 0)]),  # IoU 0.5: at the threshold, matched
        ([A], [[0, 0, 10, 21]], []),  # IoU 10/21 < 0.5
        ([A], [[5, 5, 5, 5]], []),  # a detection without area overlaps nothing
        ([A, [1, 0, 11, 10]], [[1, 0, 11, 10]], [(1, 0)]),  # the better overlap wins, one to one
        ([[-5, -5, 5, 5]], [[-5, -5, 5, 5]], [(0, 0)]),  # negative coordinates are boxes too
    ],
)
def test_match_boxes(
    tracked: list[list[float]], detected: list[list[float]], pairs: list[tuple[int, int]]
) -> None:
    assert sorted(match_boxes(tracked, detected, 0.5)) == pairs


@given(
    st.lists(
        st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0.5, 30), st.floats(0.5, 30)),
        min_size=2,
        max_size=8,
    )
)
def test_iou_matrix_is_the_pairwise_box_iou(xywh: list[tuple[float, float, float, float]]) -> None:
    boxes = np.array(xywh)
    xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
    rows, cols = np.triu_indices(len(boxes))
    np.testing.assert_allclose(iou_matrix(xyxy, xyxy)[rows, cols], box_iou_xywh(boxes[rows], boxes[cols]))


@st.composite
def scenes(draw: st.DrawFn) -> tuple[list[Shape], int]:
    """Shapes (20 x 20 or larger) moving at most 2 pixels a frame, some entering late or leaving
    early, each in its own lane 100 pixels high (two shapes never overlap); keyframes ``every``
    frames apart."""
    shapes = []
    for lane in range(draw(st.integers(1, 5))):
        enter = draw(st.integers(0, 20))
        leave = draw(st.one_of(st.none(), st.integers(enter + 1, 40)))
        size = (draw(st.integers(20, 40)), draw(st.integers(20, 40)))
        start = (draw(st.integers(0, 300)), 100 * lane + draw(st.integers(0, 30)))
        step = (draw(st.floats(-2, 2)), draw(st.floats(-0.5, 0.5)))
        shapes.append(Shape((0, 0, 0), size, start, step, enter, leave))
    return shapes, draw(st.integers(1, 4))


def _visible(shapes: list[Shape], frame: int) -> tuple[list[int], npt.NDArray[np.float64]]:
    seen = [n for n, s in enumerate(shapes) if s.box(frame) is not None]
    return seen, np.array([shapes[n].box(frame) for n in seen], dtype=np.float64).reshape(-1, 4)


@given(scenes(), st.randoms(use_true_random=False))
def test_shapes_keep_their_ids_while_the_tracker_follows_them(
    scene: tuple[list[Shape], int], order: random.Random
) -> None:
    shapes, every = scene
    identities = Identities(min_iou=0.5, patience=0)
    id_of: dict[int, int] = {}  # shape -> its track id
    for frame in range(0, 48, every):
        live = list(id_of)
        # a tracker a frame behind: a live shape's box is where it was on the frame before (IoU
        # above 0.5 with its box now, at 2 pixels a frame); a shape off screen now is lost
        followed = [(n, shapes[n].box(frame - 1)) for n in live if shapes[n].box(frame) is not None]
        seen, detected = _visible(shapes, frame)
        shuffled = list(range(len(seen)))
        order.shuffle(shuffled)  # the detector's order is not the tracks'
        boxes = np.array([b for _, b in followed]).reshape(-1, 4)
        assigned = identities.assign([id_of[n] for n, _ in followed], boxes, detected[shuffled])
        assert assigned.kept == []  # every followed shape is detected again
        new_ids = {seen[k]: track for k, track in zip(shuffled, assigned.detections, strict=True)}
        for n, track in new_ids.items():
            assert id_of.setdefault(n, track) == track  # a shape keeps its id; a new one gets its own
        assert len(set(id_of.values())) == len(id_of)
        id_of = {n: t for n, t in id_of.items() if n in new_ids}  # a shape gone ends its track


def test_a_jump_past_the_iou_is_a_new_track_and_a_miss_lives_patience_keyframes() -> None:
    identities = Identities(min_iou=0.5, patience=1)
    first = identities.assign([], [], [A, B])
    assert first.detections == [1, 2]
    # track 1 moved 6 px (IoU 4/16 < 0.5): a new track 3; track 2 missed once: kept
    second = identities.assign([1, 2], [A, B], [[6, 0, 16, 10]])
    assert (second.detections, second.kept, second.kept_positions) == ([3], [1, 2], [0, 1])
    # missed again: both end (patience 1); track 3 found again keeps its id
    third = identities.assign([1, 2, 3], [A, B, [6, 0, 16, 10]], [[6, 0, 16, 10]])
    assert (third.detections, third.kept) == ([3], [])
    # a track found again starts its count over
    identities = Identities(min_iou=0.5, patience=1)
    identities.assign([], [], [A])
    assert identities.assign([1], [A], []).kept == [1]
    assert identities.assign([1], [A], [A]).detections == [1]
    assert identities.assign([1], [A], []).kept == [1]
