"""People's boxes as exemplars, and the regions found beyond them (no servers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prelabel.labelstudio.client import Task
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.exemplars import NewRegions, exemplar_boxes, new_regions, write_new_regions
from prelabel.labelstudio.labelmap import LabelMap
from prelabel.predict.batches import exemplar_options
from prelabel.predict.models import create_model
from prelabel.records import Detections, PredictionRecord
from tests.conftest import random_image_item

CONFIG = parse_label_config("""<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="civilian vehicle"/><Label value="person"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image"><Label value="person"/></BrushLabels>
</View>""")
MAPPING = LabelMap({"car": "civilian vehicle"})


def _box(
    label: str, x: float, y: float, w: float, h: float, kind: str = "rectanglelabels"
) -> dict[str, object]:
    return {
        "id": f"{label}{x}",
        "type": kind,
        "from_name": "box",
        "to_name": "image",
        "original_width": 200,
        "original_height": 100,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, kind: [label]},
    }


def _task(task_id: int, *annotations: list[dict[str, object]]) -> Task:
    made = [
        {"id": task_id * 10 + i, "result": result, "updated_at": f"2026-01-0{i + 1}"}
        for i, result in enumerate(annotations)
    ]
    return Task.from_json(
        {"id": task_id, "data": {"image": f"/data/upload/1/abc-{task_id}.jpg"}, "annotations": made}
    )


def test_exemplars_are_the_latest_annotations_rectangles_in_pixels_as_the_model_is_prompted() -> None:
    old = [_box("person", 0, 0, 10, 10)]
    latest = [_box("civilian vehicle", 10, 20, 50, 40), _box("person", 50, 50, 25, 50)]
    tasks = [_task(1, old, latest), _task(2)]
    boxes = exemplar_boxes(tasks, CONFIG, {"a.jpg": 1, "b.jpg": 2, "c.jpg": 3}, MAPPING)
    # the label map's model label for "civilian vehicle"; percent -> pixels of the 200 x 100 image
    assert boxes == {"a.jpg": [["car", 20.0, 20.0, 120.0, 60.0], ["person", 100.0, 50.0, 150.0, 100.0]]}


def test_new_regions_are_found_regions_that_overlap_no_drawn_box_of_their_label() -> None:
    drawn = {"a.jpg": [["car", 0, 0, 10, 10], ["person", 50, 50, 60, 60]]}
    found = Detections(
        xyxy=np.array([[0, 0, 10, 9], [30, 30, 40, 40], [50, 50, 60, 60], [0, 0, 10, 10]], float),
        scores=np.ones(4),
        labels=("car", "car", "civilian vehicle", "dog"),
    )
    item = random_image_item(0, (64, 64))
    records = [
        PredictionRecord(item.info, found, uri="a.jpg", task_id=7),
        PredictionRecord(item.info, found, uri="b.jpg", task_id=8),
    ]
    labels = ("civilian vehicle", "person")
    rows = new_regions(records, drawn, MAPPING, labels)
    # the first car box matches the drawn one (IoU 0.9); the second is new; the vehicle box at the
    # person's place is new for its label; the person drew nothing found; dog is not a project
    # label and counts as itself; b.jpg has no exemplars: no rows
    assert rows == [
        NewRegions(7, "a.jpg", "civilian vehicle", 1, 3, 2),
        NewRegions(7, "a.jpg", "dog", 0, 1, 1),
        NewRegions(7, "a.jpg", "person", 1, 0, 0),
    ]


def test_new_regions_csv(tmp_path: Path) -> None:
    path = write_new_regions(tmp_path / "new.csv", [NewRegions(7, "a, b.jpg", "person", 1, 3, 2)])
    assert path.read_text() == 'task,image,label,drawn,found,new\n7,"a, b.jpg",person,1,3,2\n'


@pytest.mark.parametrize(
    ("model", "options", "wanted"),
    [
        ("sam3", {"exemplars": "project"}, ["exemplars"]),  # asks
        ("sam3", {}, []),  # does not
        ("sam3", {"exemplars": {"a.jpg": []}}, []),  # already filled
        ("sam3+vitpose", {"sam3.exemplars": "project"}, ["sam3.exemplars"]),  # a chain's part
        ("detr", {"exemplars": "project"}, []),  # a model that takes no exemplars is left to refuse it
    ],
)
def test_exemplar_options(model: str, options: dict[str, object], wanted: list[str]) -> None:
    assert exemplar_options(model, options) == wanted


def test_per_label_thresholds_in_a_chain_name_their_part(tiny_sam3: Path) -> None:
    chain = create_model(
        "sam3+vitpose",
        **{"sam3.checkpoint": str(tiny_sam3), "sam3.classes": "person", "sam3.threshold.person": 0.7},
    )
    assert chain.signature().params["sam3"]["thresholds"] == {"person": 0.7}
