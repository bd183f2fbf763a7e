"""Keyframes: thinning a track then expanding it as Label Studio's frontend does (property-based),
gaps as ``enabled: false``, and the frontend's drawing rules on hand-made keyframes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prelabel.video.keyframes import Keyframe, box_iou_xywh, expand, thin


@st.composite
def tracks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """A track seen on runs of frames (gaps between), boxes moving by random steps (percent)."""
    last = draw(st.integers(1, 60))
    seen = sorted(draw(st.sets(st.integers(1, last), min_size=1, max_size=last)))
    start = draw(st.tuples(st.floats(0, 80), st.floats(0, 80), st.floats(1, 20), st.floats(1, 20)))
    steps = draw(st.lists(st.tuples(*[st.floats(-3, 3)] * 4), min_size=len(seen), max_size=len(seen)))
    boxes = np.array(start) + np.cumsum(np.array(steps), axis=0)
    boxes[:, 2:] = np.clip(boxes[:, 2:], 0.5, None)
    return np.array(seen), boxes, last


def _check(keys: list[Keyframe], frames: np.ndarray, boxes: np.ndarray, last: int, min_iou: float) -> bool:
    """Whether the keyframes draw exactly the track's frames, each within ``min_iou``."""
    drawn, shapes = expand(keys, last)
    if not np.array_equal(drawn, frames):
        return False
    return bool((box_iou_xywh(shapes[:, :4], boxes) >= min_iou).all())


@given(tracks(), st.sampled_from([0.5, 0.9, 0.99]))
def test_thinned_keyframes_expand_within_tolerance_and_none_is_needless(
    track: tuple[np.ndarray, np.ndarray, int], min_iou: float
) -> None:
    frames, boxes, last = track
    keys = thin(frames, boxes, last, min_iou)
    assert _check(keys, frames, boxes, last, min_iou)
    assert [k.frame for k in keys] == sorted({k.frame for k in keys})
    for n in range(len(keys)):  # dropping any one keyframe breaks the drawing (frames or tolerance)
        assert not _check(keys[:n] + keys[n + 1 :], frames, boxes, last, min_iou)


def test_a_steady_track_is_two_keyframes_and_a_turn_adds_one() -> None:
    frames = np.arange(1, 21)
    boxes = np.stack([frames * 1.0, np.full(20, 10.0), np.full(20, 5.0), np.full(20, 5.0)], 1)
    assert [k.frame for k in thin(frames, boxes, 20)] == [1, 20]  # straight line: ends only
    boxes[10:, 1] += np.arange(10) * 3  # turns down at frame 11
    assert [k.frame for k in thin(frames, boxes, 20)] == [1, 11, 20]


def test_gaps_end_segments_with_enabled_false_and_a_return_gets_a_keyframe() -> None:
    frames = np.array([3, 4, 5, 6, 10, 11, 15])
    keys = thin(frames, np.tile([10.0, 10.0, 5.0, 5.0], (7, 1)), 20)
    assert [(k.frame, k.enabled) for k in keys] == [
        (3, True),
        (6, False),
        (10, True),
        (11, False),
        (15, False),
    ]
    assert expand(keys, 20)[0].tolist() == frames.tolist()
    to_the_end = thin(np.arange(5, 21), np.tile([10.0, 10.0, 5.0, 5.0], (16, 1)), 20)
    assert [(k.frame, k.enabled) for k in to_the_end] == [(5, True)]  # held to the last frame


@pytest.mark.parametrize(
    ("keys", "count", "frames", "first_box", "last_box"),
    [
        # interpolated between two keyframes, held after the last, nothing before the first
        ([Keyframe(3, 0, 0, 10, 10), Keyframe(5, 20, 10, 10, 10)], 7, [3, 4, 5, 6, 7], (0, 0), (20, 10)),
        # enabled false: drawn on its own frame, hidden after it until the next keyframe
        (
            [Keyframe(1, 0, 0, 10, 10), Keyframe(3, 4, 0, 10, 10, enabled=False), Keyframe(6, 9, 0, 10, 10)],
            7,
            [1, 2, 3, 6, 7],
            (0, 0),
            (9, 0),
        ),
        # a lone disabled keyframe: one frame
        ([Keyframe(4, 1, 1, 2, 2, enabled=False)], 9, [4], (1, 1), (1, 1)),
        # keyframes past the video's frames are not drawn; interpolation still aims at them
        ([Keyframe(2, 0, 0, 10, 10), Keyframe(12, 100, 0, 10, 10)], 4, [2, 3, 4], (0, 0), (20, 0)),
        # unsorted: sorted by frame first
        ([Keyframe(5, 8, 0, 10, 10), Keyframe(1, 0, 0, 10, 10)], 5, [1, 2, 3, 4, 5], (0, 0), (8, 0)),
    ],
)
def test_expand_follows_the_frontend(
    keys: list[Keyframe],
    count: int,
    frames: list[int],
    first_box: tuple[float, float],
    last_box: tuple[float, float],
) -> None:
    drawn, boxes = expand(keys, count)
    assert drawn.tolist() == frames
    assert tuple(boxes[0, :2]) == pytest.approx(first_box) and tuple(boxes[-1, :2]) == pytest.approx(last_box)


def test_rotation_turns_the_shorter_way_and_duplicates_follow_the_frontend() -> None:
    _, boxes = expand([Keyframe(1, 0, 0, 1, 1, rotation=170), Keyframe(3, 0, 0, 1, 1, rotation=-170)], 3)
    assert boxes[:, 4].tolist() == pytest.approx([170, 180, -170])  # through 180, not through 0
    # two keyframes on frame 2: the first gives its box, the last its lifespan and what follows
    keys = [Keyframe(2, 0, 0, 1, 1), Keyframe(2, 50, 0, 1, 1, enabled=False), Keyframe(4, 9, 0, 1, 1)]
    drawn, boxes = expand(keys, 5)
    assert drawn.tolist() == [2, 4, 5] and boxes[0, 0] == 0 and boxes[1, 0] == 9


def test_thin_refuses_what_it_cannot_draw() -> None:
    with pytest.raises(ValueError, match="increase"):
        thin([2, 2], np.ones((2, 4)), 5)
    with pytest.raises(ValueError, match=r"within 1\.\.5"):
        thin([6], np.ones((1, 4)), 5)
    with pytest.raises(ValueError, match="min_iou"):
        thin([1], np.ones((1, 4)), 5, min_iou=0)
    assert thin([], np.zeros((0, 4)), 5) == []
