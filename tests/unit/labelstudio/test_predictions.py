"""Record + label map + labeling config -> Label Studio prediction."""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.converter.brush import mask2rle

from prelabel.convert.masks import brush_to_mask, mask_to_coco
from prelabel.core.errors import LabelConfigError, MaskError
from prelabel.core.images import ImageInfo
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.labelstudio.predictions import build_prediction
from prelabel.records import Detections, PredictionRecord

FULL = parse_label_config(
    """<View><Image name="image" value="$image"/>
    <RectangleLabels name="label" toName="image">
      <Label value="civilian vehicle"/><Label value="person"/>
    </RectangleLabels>
    <BrushLabels name="mask" toName="image"><Label value="civilian vehicle"/></BrushLabels>
    <TextArea name="transcription" toName="image" perRegion="true"/></View>"""
)
BOXES_ONLY = parse_label_config(
    """<View><Image name="img" value="$url"/>
    <RectangleLabels name="box" toName="img"><Label value="person"/></RectangleLabels></View>"""
)
IMAGE = ImageInfo("street.jpg", "ab" * 32, 200, 100, 1, 200, 100, "JPEG", "RGB")


def _mask() -> np.ndarray:
    mask = np.zeros((100, 200), np.uint8)
    mask[10:30, 20:60] = 1
    return mask


def _record(**kwargs: object) -> PredictionRecord:
    det = Detections(
        xyxy=[[20, 10, 60, 30], [0, 0, 50, 50], [150, 80, 250, 120], [5, 5, 5, 9]],
        scores=[0.9, 0.6, 0.7, 0.8],
        labels=("car", "dog", "person", "person"),
        masks=(mask_to_coco(_mask()), None, None, None),
        texts=(None, None, "STOP", None),
    )
    return PredictionRecord(image=IMAGE, detections=det, **kwargs)  # type: ignore[arg-type]


def test_builds_rectangles_brushes_and_text() -> None:
    prediction, report = build_prediction(_record(), FULL, LabelMap({"car": "civilian vehicle"}), "dinox-v1")
    results = prediction["result"]
    assert prediction["model_version"] == "dinox-v1"
    by_type = [(r["type"], r["id"]) for r in results]
    assert by_type == [
        ("rectanglelabels", "det0"),
        ("brushlabels", "det0-mask"),
        ("rectanglelabels", "det2"),
        ("textarea", "det2"),  # shares its rectangle's id: one region in the UI
    ]
    rect = results[0]
    assert rect["from_name"] == "label" and rect["to_name"] == "image"
    assert (rect["original_width"], rect["original_height"], rect["image_rotation"]) == (200, 100, 0)
    value = dict(rect["value"])
    assert value.pop("rectanglelabels") == ["civilian vehicle"]
    assert value == pytest.approx({"x": 10, "y": 10, "width": 20, "height": 20, "rotation": 0})
    brush = results[1]
    assert brush["value"]["format"] == "rle"
    assert brush["value"]["rle"] == mask2rle(_mask() * 255)
    assert np.array_equal(brush_to_mask(brush["value"]["rle"], 100, 200), _mask())
    clipped = results[2]["value"]  # box 150..250 clipped to the 200-px image
    assert clipped["x"] == pytest.approx(75) and clipped["width"] == pytest.approx(25)
    assert results[3]["value"]["text"] == ["STOP"]
    assert report.unmatched_labels == {"dog": 1}
    assert report.dropped == {"zero area": 1}
    assert report.regions == 2
    assert prediction["score"] == pytest.approx((0.9 + 0.7) / 2)


def test_masks_requested_without_brush_labels_is_a_clear_error() -> None:
    with pytest.raises(LabelConfigError, match="<BrushLabels"):
        build_prediction(_record(), BOXES_ONLY, masks=True)


def test_masks_skipped_when_config_has_none() -> None:
    prediction, report = build_prediction(_record(), BOXES_ONLY)
    assert [r["type"] for r in prediction["result"]] == ["rectanglelabels"]
    assert prediction["result"][0]["to_name"] == "img"
    assert report.unmatched_labels == {"car": 1, "dog": 1}


def test_no_usable_control() -> None:
    config = parse_label_config(
        '<View><Image name="i" value="$i"/><TextArea name="t" toName="i" perRegion="true"/></View>'
    )
    with pytest.raises(LabelConfigError, match="nothing to post"):
        build_prediction(_record(), config)


def test_empty_detections_give_an_empty_result() -> None:
    record = PredictionRecord(image=IMAGE, detections=Detections())
    prediction, report = build_prediction(record, FULL)
    assert prediction == {"result": [], "score": None, "model_version": "prelabel"}
    assert report.regions == 0


def test_mask_of_the_wrong_size_is_reported_per_image() -> None:
    det = Detections(
        xyxy=[[0, 0, 1, 1]], scores=[1], labels=("car",), masks=(mask_to_coco(np.ones((7, 7), np.uint8)),)
    )
    with pytest.raises(MaskError, match=r"street\.jpg"):
        build_prediction(
            PredictionRecord(image=IMAGE, detections=det), FULL, LabelMap({"car": "civilian vehicle"})
        )


@pytest.mark.parametrize(
    ("image", "mask_shape"),
    [
        (IMAGE, (100, 200)),  # masks already on the displayed grid
        (ImageInfo("turned.jpg", "cd" * 32, 200, 100, 6, 100, 200, "JPEG", "RGB"), (200, 100)),  # EXIF 6
        (IMAGE, (50, 100)),  # an API that halved the image
    ],
)
def test_each_mask_is_decoded_once_on_its_way_to_a_brush(
    image: ImageInfo, mask_shape: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prelabel.convert import masks as masks_module

    decodes: list[object] = []
    real_decode = masks_module.coco_mask.decode

    def counting_decode(rle: object) -> object:
        decodes.append(rle)
        return real_decode(rle)

    monkeypatch.setattr(masks_module.coco_mask, "decode", counting_decode)
    blob = np.zeros(mask_shape, np.uint8)
    blob[2:20, 3:40] = 1
    det = Detections(
        xyxy=[[3, 2, 40, 20]] * 3, scores=[0.9] * 3, labels=("car",) * 3, masks=(mask_to_coco(blob),) * 3
    )
    prediction, report = build_prediction(
        PredictionRecord(image, det), FULL, LabelMap({"car": "civilian vehicle"})
    )
    brushes = [r for r in prediction["result"] if r["type"] == "brushlabels"]
    assert len(brushes) == 3 and report.regions == 3
    assert len(decodes) == 3
    for brush in brushes:
        assert brush_to_mask(brush["value"]["rle"], image.height, image.width).shape == (
            image.height,
            image.width,
        )
