"""Pixel boxes <-> Label Studio percent, clipping, EXIF re-orientation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageOps

from prelabel.convert.geometry import (
    clean_boxes,
    clip_polygon,
    corners_to_xyxy,
    orient_boxes,
    orient_mask,
    percent_to_corners,
    percent_to_xyxy,
    points_to_percent,
    polygon_area,
    xyxy_to_percent,
    xyxy_to_xywh,
)


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((0, 0, 100, 50), (100, 50), {"x": 0, "y": 0, "width": 100, "height": 100}),  # whole image
        ((10, 5, 30, 25), (200, 100), {"x": 5, "y": 5, "width": 10, "height": 20}),  # inside
        ((0, 0, 0, 0), (10, 10), {"x": 0, "y": 0, "width": 0, "height": 0}),  # zero area
        (
            (-10, -5, 5, 5),
            (100, 100),
            {"x": -10, "y": -5, "width": 15, "height": 10},
        ),  # negative: no clip here
    ],
)
def test_xyxy_to_percent(box: tuple[float, ...], size: tuple[int, int], expected: dict[str, float]) -> None:
    assert xyxy_to_percent(box, *size) == pytest.approx(expected)


def test_xyxy_to_percent_rejects_empty_image() -> None:
    with pytest.raises(ValueError, match="positive"):
        xyxy_to_percent((0, 0, 1, 1), 0, 10)


@given(
    st.integers(1, 8000),
    st.integers(1, 8000),
    st.lists(st.floats(0, 1, allow_nan=False), min_size=4, max_size=4),
)
def test_percent_round_trip(width: int, height: int, fractions: list[float]) -> None:
    x1, x2 = sorted(fractions[:2])
    y1, y2 = sorted(fractions[2:])
    box = (x1 * width, y1 * height, x2 * width, y2 * height)
    back = percent_to_xyxy(xyxy_to_percent(box, width, height), width, height)
    assert back == pytest.approx(box, rel=1e-9, abs=1e-9)


def test_xywh() -> None:
    assert xyxy_to_xywh((1, 2, 4, 8)) == (1, 2, 3, 6)


def test_percent_to_xyxy_refuses_rotation() -> None:
    with pytest.raises(ValueError, match="rotated"):
        percent_to_xyxy({"x": 0, "y": 0, "width": 1, "height": 1, "rotation": 30}, 10, 10)


@pytest.mark.parametrize(
    ("rotation", "corners"),
    [
        # 200x100 image; the box is x=20, y=10, 40 wide, 10 high in pixels.
        (0, ((20, 10), (60, 10), (60, 20), (20, 20))),  # not rotated: the plain box
        (90, ((20, 10), (20, 50), (10, 50), (10, 10))),  # a quarter turn clockwise about (20, 10)
        (180, ((20, 10), (-20, 10), (-20, 0), (20, 0))),  # upside down: may leave the image
        (270, ((20, 10), (20, -30), (30, -30), (30, 10))),
        (360, ((20, 10), (60, 10), (60, 20), (20, 20))),  # a full turn is none
    ],
)
def test_percent_to_corners(rotation: float, corners: tuple[tuple[float, float], ...]) -> None:
    value = {"x": 10, "y": 10, "width": 20, "height": 10, "rotation": rotation}
    got = percent_to_corners(value, 200, 100)
    assert [pytest.approx(c, abs=1e-9) for c in corners] == list(got)


def test_corners_to_xyxy_encloses() -> None:
    assert corners_to_xyxy(((20, 10), (20, 50), (10, 50), (10, 10))) == (10, 10, 20, 50)
    value = {"x": 10, "y": 10, "width": 20, "height": 10, "rotation": 0}
    assert corners_to_xyxy(percent_to_corners(value, 200, 100)) == pytest.approx(
        percent_to_xyxy(value, 200, 100)
    )


def test_percent_to_corners_rejects_empty_image() -> None:
    with pytest.raises(ValueError, match="positive"):
        percent_to_corners({"x": 0, "y": 0, "width": 1, "height": 1, "rotation": 30}, 10, 0)


@given(
    st.integers(1, 4000),
    st.integers(1, 4000),
    st.lists(st.floats(0, 100, allow_nan=False), min_size=4, max_size=4),
    st.floats(-360, 360, allow_nan=False),
)
def test_percent_to_corners_matches_label_studio_sdk(
    width: int, height: int, numbers: list[float], rotation: float
) -> None:
    """The SDK's YOLO-OBB converter reads Label Studio's rotation the same way."""
    from label_studio_sdk.converter.utils import convert_annotation_to_yolo_obb

    x, y, w, h = numbers
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": rotation}
    reference = convert_annotation_to_yolo_obb(
        {**value, "original_width": width, "original_height": height}, normalize=False
    )
    assert list(percent_to_corners(value, width, height)) == [pytest.approx(c, abs=1e-6) for c in reference]


def test_clean_boxes_clips_and_counts_reasons() -> None:
    boxes = [
        [10, 10, 20, 20],  # kept as is
        [-5, -5, 5, 5],  # clipped to [0, 0, 5, 5]
        [95, 40, 120, 60],  # clipped on the right
        [30, 30, 30, 40],  # zero width
        [200, 200, 300, 300],  # outside
        [-20, 0, -1, 10],  # outside, negative side
        [np.nan, 0, 5, 5],  # not finite
        [20, 20, 10, 10],  # reversed corners: reordered
    ]
    result = clean_boxes(boxes, 100, 50)
    assert result.keep.tolist() == [True, True, True, False, False, False, False, True]
    assert result.boxes[1].tolist() == [0, 0, 5, 5]
    assert result.boxes[2].tolist() == [95, 40, 100, 50]
    assert result.boxes[7].tolist() == [10, 10, 20, 20]
    assert result.dropped == {"zero area": 1, "outside image": 2, "not finite": 1}


def test_clean_boxes_empty() -> None:
    result = clean_boxes(np.zeros((0, 4)), 10, 10)
    assert result.keep.shape == (0,)
    assert not result.dropped


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_mask_matches_pillow(orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    mask = (rng.random((5, 7)) > 0.5).astype(np.uint8)
    image = Image.fromarray(mask * 255, "L")
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image)) // 255
    assert np.array_equal(orient_mask(mask, orientation), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_boxes_follows_the_mask(orientation: int) -> None:
    # A box around a block of pixels lands around the same block after re-orientation.
    mask = np.zeros((5, 7), np.uint8)
    mask[1:3, 2:6] = 1  # rows 1-2, cols 2-5: box (2, 1, 6, 3)
    moved = orient_mask(mask, orientation)
    ys, xs = np.nonzero(moved)
    expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert orient_boxes([[2, 1, 6, 3]], 7, 5, orientation)[0].tolist() == expected


@pytest.mark.parametrize(
    ("ring", "expected"),
    [
        (((10, 10), (50, 10), (30, 40)), ((10, 10), (50, 10), (30, 40))),  # on the image: as given
        (((300, 300), (400, 300), (400, 400)), ()),  # wholly off it: empty
        # covering it: the image's corners
        (((-10, -10), (300, -10), (300, 300), (-10, 300)), ((200, 0), (200, 100), (0, 100), (0, 0))),
        # one corner far below: cut along the bottom edge, not moved onto it
        (((10, 10), (190, 10), (100, 1e6)), ((10, 10), (190, 10), (189.99, 100), (10.01, 100))),
        # out below the image and back: one ring, its two parts joined along the bottom edge
        (
            ((10, 10), (30, 10), (30, 150), (60, 150), (60, 10), (80, 10), (80, 90), (10, 90)),
            ((10, 10), (30, 10), (30, 100), (60, 100), (60, 10), (80, 10), (80, 90), (10, 90)),
        ),
    ],
)
def test_clip_polygon_cuts_along_the_image_edges(
    ring: tuple[tuple[float, float], ...], expected: tuple[tuple[float, float], ...]
) -> None:
    got = clip_polygon(ring, 200, 100)
    assert got.shape == (len(expected), 2) and np.allclose(got, np.reshape(expected, (-1, 2)), atol=0.01)


_COORDINATE = st.floats(-300, 500).map(lambda v: round(v, 3))


@given(st.lists(st.tuples(_COORDINATE, _COORDINATE), min_size=3, max_size=3))
def test_clip_polygon_keeps_a_triangles_area_on_the_image(triangle: list[tuple[float, float]]) -> None:
    """Checked against OpenCV's convex intersection (a triangle is convex; so is the image), on
    coordinates of a thousandth of a pixel: OpenCV's float32 intersection answered 20000 for a
    triangle of area 1 with a vertex at y = 5.7e-21."""
    import cv2

    points = np.array(triangle, dtype=np.float64)
    if polygon_area(points) < 1:
        return
    image = np.array([[0, 0], [200, 0], [200, 100], [0, 100]], dtype=np.float32)
    area, _ = cv2.intersectConvexConvex(points.astype(np.float32), image)
    clipped = clip_polygon(points, 200, 100)
    assert ((clipped >= 0) & (clipped <= (200, 100))).all()
    assert polygon_area(clipped) == pytest.approx(max(area, 0.0), rel=1e-3, abs=0.05)


def test_a_point_on_the_far_edges_is_100_percent_exactly() -> None:
    """Scaling by 100 / width first gave 100.00000000000001 for 273 widths under 5000: a
    polygon or keypoint on the right edge that Label Studio's prediction validator refuses."""
    over = [size for size in range(1, 5001) if max(points_to_percent([(size, size)], size, size)[0]) > 100]
    assert over == []
