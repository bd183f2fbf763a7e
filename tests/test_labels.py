"""Label maps and labeling configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from prelabel.errors import LabelConfigError, LabelMapError
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap, Normalization, load_label_map

PROJECT = ["civilian vehicle", "Person", "traffic_light", "bus"]


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
    params = PostParams(project_id=1, input_dir=str(tmp_path), label_map=inline,
                        label_map_file=str(tmp_path / "map.json"))  # fmt: skip
    with pytest.raises(LabelMapError, match=message) as caught:
        label_map(params)
    assert caught.value.name == "the label_map parameter"
    good = PostParams(project_id=1, input_dir=str(tmp_path), label_map={"car": "vehicle"},
                      label_map_file=str(tmp_path / "map.json"))  # fmt: skip
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
        "RectangleLabels", "BrushLabels", "TextArea", "Choices", "PolygonLabels", "KeyPointLabels"
    }  # fmt: skip


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
