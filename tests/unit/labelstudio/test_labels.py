"""Label maps and labeling configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prelabel.convert.masks import mask_to_coco
from prelabel.core.errors import LabelConfigError, LabelMapError
from prelabel.core.images import ImageInfo
from prelabel.labelstudio.config import Condition, parse_label_config
from prelabel.labelstudio.labelmap import LabelMap, Normalization, load_label_map, require_targets
from prelabel.labelstudio.predictions import build_prediction
from prelabel.records import Choice, Detections, Keypoint, PredictionRecord

PROJECT = ["civilian vehicle", "Person", "traffic_light", "bus"]
IMAGE = ImageInfo("street.jpg", "ab" * 32, 200, 100, 1, 200, 100, "JPEG", "RGB")


@pytest.mark.parametrize(
    ("model_label", "normalization", "expected"),
    [
        ("car", Normalization(), "civilian vehicle"),  # mapped
        ("CAR ", Normalization(), "civilian vehicle"),  # case and whitespace
        ("person", Normalization(), "Person"),  # identity through normalisation
        ("traffic light", Normalization(), "traffic_light"),  # underscores
        ("persons", Normalization(), None),  # plural without plural folding
        ("persons", Normalization(plurals=True), "Person"),  # plural folding
        ("buses", Normalization(plurals=True), "bus"),  # -es plural
        ("bus", Normalization(plurals=True), "bus"),  # 'bus' is not a plural
        ("Person", Normalization(case=False), "Person"),  # exact
        ("person", Normalization(case=False), None),  # case-sensitive when asked
        ("dog", Normalization(), None),  # unknown: unmatched
        ("truck", Normalization(), None),  # mapped to a label the project lacks
    ],
)
def test_resolve(model_label: str, normalization: Normalization, expected: str | None) -> None:
    label_map = LabelMap({"car": "civilian vehicle", "truck": "lorry"}, normalization)
    assert label_map.resolve(model_label, PROJECT) == expected


@pytest.mark.parametrize(
    ("suffix", "text"), [(".json", '{"car": "civilian vehicle"}'), (".yaml", "car: civilian vehicle\n")]
)
def test_load_label_map(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"map{suffix}"
    path.write_text(text)
    assert load_label_map(path).mapping == {"car": "civilian vehicle"}


@pytest.mark.parametrize(
    ("suffix", "text", "message"),
    [
        (".json", "[1, 2]", "flat object"),  # not an object
        (".json", '{"car": 1}', "must be a string"),  # non-string value
        (".json", "{bad json", "not valid JSON"),  # syntax
        (".yaml", "car: [a, b]\n", "must be a string"),  # nested
        (".yaml", "Car: a\ncar: b\n", "normalise alike"),  # conflicting keys
        # meant as "leave car out": the project's own car was posted still
        (".json", '{"car": " "}', "'car': an empty label maps nothing"),
        (".yaml", "'': car\n", "'': an empty label"),  # a key no model label is
    ],
)
def test_bad_label_maps_name_the_file(tmp_path: Path, suffix: str, text: str, message: str) -> None:
    path = tmp_path / f"map{suffix}"
    path.write_text(text)
    with pytest.raises(LabelMapError, match=message) as caught:
        load_label_map(path)
    assert caught.value.name == str(path)


def test_missing_label_map(tmp_path: Path) -> None:
    with pytest.raises(LabelMapError, match="cannot read"):
        load_label_map(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("inline", "message"),
    [
        ({"car": ""}, "'car': an empty label maps nothing"),
        ({"Car": "vehicle", "car": "auto"}, "normalise alike but map to different labels"),
    ],
)
def test_the_label_map_parameter_is_checked_like_a_file(
    tmp_path: Path, inline: dict[str, str], message: str
) -> None:
    """A flow's inline ``label_map`` (the UI's form) gets the file's checks, named as the parameter."""
    from flows.common import label_map
    from flows.params import PostParams

    (tmp_path / "map.json").write_text('{"truck": "lorry"}')
    params = PostParams(
        project_id=1, input_dir=str(tmp_path), label_map=inline, label_map_file=str(tmp_path / "map.json")
    )
    with pytest.raises(LabelMapError, match=message) as caught:
        label_map(params)
    assert caught.value.name == "the label_map parameter"
    good = PostParams(
        project_id=1,
        input_dir=str(tmp_path),
        label_map={"car": "vehicle"},
        label_map_file=str(tmp_path / "map.json"),
    )
    assert label_map(good).mapping == {"truck": "lorry", "car": "vehicle"}


CONFIG = """
<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="label" toName="image">
    <Label value="civilian vehicle" background="red"/>
    <Label value="Person"/>
  </RectangleLabels>
  <BrushLabels name="tag" toName="image"><Label value="Person"/></BrushLabels>
  <TextArea name="transcription" toName="image" perRegion="true" editable="true"/>
  <Choices name="quality" toName="image"><Choice value="good"/><Choice value="bad"/></Choices>
  <PolygonLabels name="poly" toName="image"><Label value="road"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="nose"/></KeyPointLabels>
</View>
"""


def test_parse_label_config() -> None:
    config = parse_label_config(CONFIG)
    assert config.image.name == "image"
    assert config.image.data_key == "image"
    rect = config.find("RectangleLabels")
    assert rect is not None
    assert (rect.name, rect.to_name, rect.labels) == ("label", "image", ("civilian vehicle", "Person"))
    assert rect.result_type == "rectanglelabels"
    assert config.require("BrushLabels", "masks").labels == ("Person",)
    text = config.find("TextArea")
    assert text is not None and text.per_region
    assert config.require("Choices", "x").labels == ("good", "bad")
    assert {c.kind for c in config.controls} == {
        "RectangleLabels",
        "BrushLabels",
        "TextArea",
        "Choices",
        "PolygonLabels",
        "KeyPointLabels",
    }


def test_missing_brush_names_what_to_add() -> None:
    config = parse_label_config('<View><Image name="img" value="$url"/></View>')
    with pytest.raises(LabelConfigError, match=r'<BrushLabels name="brush" toName="img">'):
        config.require("BrushLabels", "posting masks")


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("", "empty"),  # nothing
        ("<View><Image name='i' value='$i'>", "not well-formed"),  # unclosed
        (  # billion laughs: entity expansion refused
            '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
            "<View>&lol2;</View>",
            "forbidden",
        ),
        (  # external entity: refused, no file read
            '<?xml version="1.0"?><!DOCTYPE v [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><View>&xxe;</View>',
            "forbidden",
        ),
        ("<View><RectangleLabels name='a'/></View>", "toName"),  # control without toName
    ],
)
def test_bad_configs(xml: str, message: str) -> None:
    with pytest.raises(LabelConfigError, match=message):
        parse_label_config(xml)


def test_several_images_need_a_name() -> None:
    config = parse_label_config('<View><Image name="a" value="$a"/><Image name="b" value="$b"/></View>')
    with pytest.raises(LabelConfigError, match="several <Image>"):
        _ = config.image


# -- labels as Label Studio reads and stores them: aliases, nested Views, visibleWhen -----------

ALIASED = """
<View>
  <Image name="image" value="$image"/>
  <View style="display: flex">
    <View>
      <RectangleLabels name="label" toName="image">
        <Label value="civilian vehicle" alias="CV" hotkey="c" background="#ff0000"/>
        <Label value="person" hotkey="p" background="blue"/>
        <Label alias="tree"/>
      </RectangleLabels>
    </View>
  </View>
  <BrushLabels name="mask" toName="image"><Label value="civilian vehicle" alias="CV"/></BrushLabels>
  <PolygonLabels name="outline" toName="image"><Label value="person" alias="P"/></PolygonLabels>
  <KeyPointLabels name="kp" toName="image"><Label value="nose" alias="N"/></KeyPointLabels>
  <Choices name="follow-up" toName="image" visibleWhen="choice-selected" whenTagName="scene">
    <Choice value="day"/>
  </Choices>
  <Choices name="scene" toName="image" visibleWhen="no-region-selected">
    <Choice value="day" alias="D"/><Choice value="night" alias="N"/>
  </Choices>
  <View visibleWhen="region-selected" whenTagName="label" whenLabelValue="CV">
    <Choices name="colour" toName="image" perRegion="true"><Choice value="red" alias="R"/></Choices>
  </View>
  <Choices name="pose" toName="image" perRegion="true" visibleWhen="region-selected"
           whenLabelValue="person,P"><Choice value="standing" alias="S"/></Choices>
  <Choices name="seen" toName="image" perRegion="true"><Choice value="clearly"/></Choices>
</View>
"""


def test_labels_aliases_and_visibility_are_read_as_label_studio_reads_them() -> None:
    config = parse_label_config(ALIASED)
    rect = config.require("RectangleLabels", "boxes")  # found inside two nested Views
    assert rect.labels == ("civilian vehicle", "person", "tree")  # hotkey, background: no labels
    assert rect.aliases == {"civilian vehicle": "CV"}  # "tree": an alias alone is the label
    assert rect.names == ("civilian vehicle", "person", "tree", "CV")
    assert [rect.result_label(x) for x in ("civilian vehicle", "person")] == ["CV", "person"]
    assert [rect.label_of(x) for x in ("CV", "civilian vehicle", "person", "car")] == [
        "civilian vehicle",
        "civilian vehicle",
        "person",
        None,
    ]
    scene, follow_up = (next(c for c in config.controls if c.name == n) for n in ("scene", "follow-up"))
    assert scene.always_shown and not follow_up.always_shown
    assert config.image_choices_control is scene  # the follow-up question is not the image's class
    colour, pose, seen = config.choice_controls(per_region=True)
    assert colour.shown_when == (Condition("region-selected", "label", ("CV",)),)  # from its View
    assert [colour.shows_region("label", x) for x in ("CV", "person")] == [True, False]
    assert [pose.shows_region(c, x) for c, x in (("label", "person"), ("outline", "P"), ("label", "CV"))] == [
        True,
        True,
        False,
    ]
    assert seen.shows_region("mask", "anything")
    assert config.stored_label("scene", "N") == "night" and config.stored_label("kp", "N") == "nose"
    assert config.stored_label("nope", "N") == "N"  # a control the config lacks: as it is
    assert set(config.label_names) >= {"CV", "civilian vehicle", "tree", "D", "night", "S", "clearly"}


def test_a_deeply_nested_config_is_no_recursion_error() -> None:
    depth = 5000
    xml = "<View>" * depth + '<Image name="i" value="$i"/>' + "</View>" * depth
    assert parse_label_config(xml).image.name == "i"


def _aliased_record() -> PredictionRecord:
    mask = np.zeros((100, 200), np.uint8)
    mask[10:30, 20:60] = 1
    detections = Detections(
        xyxy=[[20, 10, 60, 30], [100, 20, 140, 90]],
        scores=[0.9, 0.8],
        labels=("car", "person"),
        masks=(mask_to_coco(mask), None),
        polygons=(None, ((100, 20), (140, 20), (120, 90))),
        keypoints=(None, (Keypoint("nose", 120, 30, 0.7),)),
        region_choices=(
            (Choice("red", 0.6), Choice("standing", 0.9), Choice("clearly", 0.5)),
            (Choice("red", 0.6), Choice("standing", 0.7)),
        ),
        choices=(Choice("night", 0.8),),
    )
    return PredictionRecord(IMAGE, detections)


def test_results_carry_what_label_studio_stores_and_visibility_picks_the_controls() -> None:
    config = parse_label_config(ALIASED)
    prediction, report = build_prediction(_aliased_record(), config, LabelMap({"car": "CV"}))
    stored = {(r["from_name"], r["id"]): r["value"].get(r["type"]) for r in prediction["result"]}
    assert stored == {
        ("label", "det0"): ["CV"],  # a label map may target the alias too
        ("mask", "det0-mask"): ["CV"],
        ("colour", "det0"): ["R"],  # shown for CV regions of "label" only
        ("seen", "det0"): ["clearly"],  # always shown: takes what the first shown control lacks
        ("label", "det1"): ["person"],
        ("outline", "det1-poly0"): ["P"],
        ("kp", "det1-kp0"): ["N"],
        ("pose", "det1"): ["S"],  # shown for person regions
        ("scene", "scene"): ["N"],  # the always-shown task-level Choices
    }
    # det0's "standing" (pose is not shown for CV regions), det1's "red" (colour not for persons)
    assert report.unmatched_labels == {"standing (region choice)": 1, "red (region choice)": 1}
    assert report.region_choices == 3


def test_region_choices_no_control_shows_are_counted() -> None:
    config = parse_label_config(
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
        '<Label value="car"/><Label value="dog"/></RectangleLabels>'
        '<Choices name="colour" toName="image" perRegion="true" visibleWhen="region-selected" '
        'whenLabelValue="car"><Choice value="red"/></Choices></View>'
    )
    record = PredictionRecord(
        IMAGE,
        Detections(
            xyxy=[[1, 1, 9, 9]], scores=[0.9], labels=("dog",), region_choices=((Choice("red", 0.5),),)
        ),
    )
    prediction, report = build_prediction(record, config)
    assert [r["type"] for r in prediction["result"]] == ["rectanglelabels"]
    assert report.dropped == {"region choices: no per-region Choices shown for its region": 1}


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"car": "civilian vehicle", "man": "Person"}, None),  # a label, and one through normalisation
        ({"car": "CV"}, None),  # an alias
        (
            {"truck": "lorry", "van": "lorry", "car": "civilian vehicle"},
            (
                "labels.yaml: 'lorry' (for 'truck', 'van') is not a label of the project; its labels: "
                "civilian vehicle, person, tree, nose, day, night, red, standing, clearly"
            ),
        ),
    ],
)
def test_a_label_map_target_the_project_lacks_is_an_error(
    mapping: dict[str, str], message: str | None
) -> None:
    config = parse_label_config(ALIASED)
    if message is None:
        require_targets(LabelMap(mapping), config, "labels.yaml")
        return
    with pytest.raises(LabelMapError) as caught:
        require_targets(LabelMap(mapping), config, "labels.yaml")
    assert str(caught.value) == message


def test_pulled_aliases_come_back_as_labels() -> None:
    from prelabel.labelstudio.client import Task
    from prelabel.labelstudio.regions import extract_regions

    config = parse_label_config(ALIASED)
    prediction, _ = build_prediction(_aliased_record(), config, LabelMap({"car": "CV"}))
    task = Task.from_json(
        {
            "id": 1,
            "data": {"image": "/data/upload/1/ab-street.jpg"},
            "annotations": [{"id": 5, "result": prediction["result"]}],
        }
    )
    found = extract_regions([task], config)
    assert found.errors == []
    assert sorted((r.control, r.label) for r in found.regions) == [
        ("kp", "nose"),
        ("label", "civilian vehicle"),
        ("label", "person"),
        ("mask", "civilian vehicle"),
        ("outline", "person"),
    ]
    by_region = {(r.control, r.region_id): dict(r.attributes) for r in found.regions}
    assert by_region[("label", "det0")] == {"colour": ["red"], "seen": ["clearly"], "scene": ["night"]}
    assert by_region[("label", "det1")] == {"pose": ["standing"], "scene": ["night"]}


@pytest.mark.parametrize(
    "command",
    [
        "run --input-dir images --project-id 1 --model ocr --label-map map.json",
        "post --input-dir images --project-id 1 --label-map map.json",
        "convert --input-dir images --config labeling.xml --label-map map.json",
    ],
)
def test_a_missing_target_stops_the_command_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    from prelabel.ingest.samples import LABEL_CONFIG, make_samples
    from tests.support.cli import prelabel
    from tests.support.standin import standin

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(make_samples()[0].data)  # past the empty-folder check
    (tmp_path / "labeling.xml").write_text(LABEL_CONFIG)
    (tmp_path / "map.json").write_text('{"car": "civilian vehicle", "truck": "lorry"}')
    monkeypatch.chdir(tmp_path)
    with standin("label-studio") as server:
        monkeypatch.setenv("PRELABEL_LS_URL", server.url)
        monkeypatch.setenv("PRELABEL_LS_API_KEY", "k")
        done = prelabel(capsys, monkeypatch, *command.split())
    assert (done.code, done.out) == (2, "")
    assert done.err == (
        "prelabel: error: map.json: 'lorry' (for 'truck') is not a label of the project; its labels: "
        "civilian vehicle, person, traffic light, text\n"
    )
    assert not (tmp_path / "prelabel-output").exists()  # no run started
