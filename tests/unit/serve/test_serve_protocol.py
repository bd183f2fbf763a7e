"""The ML backend's request handling without servers: project ids, bodies, clicks and boxes, smart
controls, which image references a request may name, and what a hand-over run takes."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from flows.params import PreannotateParams
from prelabel.core.errors import RefusedRequestError, UntrustedSourceError
from prelabel.ingest.taskrefs import task_image_uri, trusted_task_image_uri
from prelabel.labelstudio.config import parse_label_config
from prelabel.serve.guards import basic_auth_ok, parse_body
from prelabel.serve.interactive import fresh_ids, prompt_config, read_context, smart_controls
from prelabel.serve.protocol import PredictRequest, project_id_of

LS = "http://127.0.0.1:8080"

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="mask" toName="image"><Label value="car"/></BrushLabels>
  <RectangleLabels name="box" toName="image"><Label value="car"/></RectangleLabels>
  <KeyPointLabels name="click" toName="image" smart="true"><Label value="car"/></KeyPointLabels>
  <RectangleLabels name="find_all" toName="image" smart="True"><Label value="car"/></RectangleLabels>
</View>"""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("3.1712345678", 3),  # Label Studio's "id.timestamp"
        ("12", 12),  # a plain id
        (7, 7),
    ],
)
def test_project_ids_are_read_from_label_studios_form(given: str | int, expected: int) -> None:
    assert project_id_of(given) == expected


@pytest.mark.parametrize("given", ["", "abc", "-3.1", "0.5", ".5", None, "99999999999.1", "3e2.1"])
def test_a_project_that_is_not_an_id_is_a_422(given: str | None) -> None:
    with pytest.raises(RefusedRequestError) as caught:
        project_id_of(given)
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{", 400, "not JSON"),  # cut short
        (b"\xff\xfe", 400, "not JSON"),  # not UTF-8
        (b"[" * 100_000 + b"]" * 100_000, 400, "not JSON"),  # nested past the parser's depth
        (b"[]", 422, "PredictRequest"),  # not an object
        (b'{"tasks": []}', 422, "tasks"),  # no task
        (b'{"tasks": [{"id": "x", "data": {}}]}', 422, "tasks.0.id"),  # an id that is not a number
        (b'{"tasks": [{"id": 1, "data": "image.jpg"}]}', 422, "tasks.0.data"),  # data not an object
        (b'{"tasks": [{"id": -4, "data": {}}]}', 422, "tasks.0.id"),  # not a task id
    ],
)
def test_bodies_that_break_the_protocol_are_refused_with_where(body: bytes, status: int, says: str) -> None:
    with pytest.raises(RefusedRequestError) as caught:
        parse_body(PredictRequest, body)
    assert caught.value.status == status
    assert says in str(caught.value)


def test_a_request_label_studio_sends_is_read_and_its_unknown_keys_left() -> None:
    body = {
        "tasks": [{"id": 4, "data": {"image": "/data/upload/1/a.jpg"}, "annotations": [], "extra": 1}],
        "project": "1.1700000000",
        "label_config": CONFIG,
        "model_version": "x",
        "params": {"login": None, "password": None, "context": None},
    }
    request = parse_body(PredictRequest, json.dumps(body).encode())
    assert [t.id for t in request.tasks] == [4]
    assert request.context is None
    body["params"] = {"context": {"result": [{"type": "keypointlabels", "value": {}}]}}
    assert parse_body(PredictRequest, json.dumps(body).encode()).context == [
        {"type": "keypointlabels", "value": {}}
    ]


@pytest.mark.parametrize(
    ("ref", "uri"),
    [
        ("/data/upload/3/ab12cd34-x.jpg", f"{LS}/data/upload/3/ab12cd34-x.jpg"),  # an upload
        ("/data/local-files/?d=photos%2Fa.jpg", f"{LS}/data/local-files/?d=photos%2Fa.jpg"),  # a local file
        (f"{LS}/data/upload/3/x.jpg", f"{LS}/data/upload/3/x.jpg"),  # the server's own URL
        ("s3://bucket/key.jpg", "s3://bucket/key.jpg"),  # cloud storage
    ],
)
def test_label_studio_files_and_s3_keys_are_read(ref: str, uri: str) -> None:
    assert trusted_task_image_uri(ref, LS) == uri


@pytest.mark.parametrize(
    "ref",
    [
        "http://example.com/a.jpg",  # another host
        "http://127.0.0.1:8081/data/upload/3/x.jpg",  # another port of this machine
        f"{LS}/api/projects/",  # the server, but not a file of it
        f"{LS}/data/upload/../../api/tasks",  # a path that leaves the files
        "/etc/passwd",  # a local path
        "file:///etc/passwd",  # another scheme
        "",
    ],
)
def test_anything_else_a_request_names_is_never_read(ref: str) -> None:
    with pytest.raises(UntrustedSourceError):
        trusted_task_image_uri(ref, LS)
    assert task_image_uri(ref, LS) == ref  # a flow run's own reading leaves them to the fetcher's rules


def click(x: object, y: object, positive: bool = True, **value: object) -> dict[str, object]:
    """A smart KeyPointLabels result as Label Studio sends it (percent)."""
    return {
        "type": "keypointlabels",
        "from_name": "click",
        "is_positive": positive,
        "value": {"x": x, "y": y, "keypointlabels": ["car"], **value},
    }


def box(
    x: float, y: float, width: float, height: float, control: str = "box", **value: object
) -> dict[str, object]:
    """A smart RectangleLabels result as Label Studio sends it (percent)."""
    value |= {"x": x, "y": y, "width": width, "height": height, "rectanglelabels": ["car"]}
    return {"type": "rectanglelabels", "from_name": control, "value": value}


def test_a_click_and_a_box_become_one_prompt_in_displayed_pixels() -> None:
    done = read_context(
        [click(50, 25), click(10, 10, positive=False), box(10, 20, 50, 200)],
        width=200,
        height=100,
        find_all_control="find_all",
    )
    assert done.label == "car" and not done.find_all
    assert done.prompt.points.tolist() == [[100.0, 25.0], [20.0, 10.0]]
    assert done.prompt.labels.tolist() == [1, 0]
    assert done.prompt.box is not None
    assert done.prompt.box.tolist() == [20.0, 20.0, 120.0, 100.0]  # cut at the image's edge


def test_a_box_of_the_find_all_control_asks_for_every_instance() -> None:
    done = read_context([click(50, 50), box(0, 0, 10, 10, control="find_all")], 100, 100, "find_all")
    assert done.find_all and len(done.prompt.points) == 0


@pytest.mark.parametrize(
    ("result", "says"),
    [
        ({"type": "polygonlabels", "value": {}}, "clicks (keypointlabels) and boxes"),  # another tool
        ({"type": "keypointlabels", "value": {"x": 1, "y": 2}}, "name a label"),  # no label
        (click("1", 2), "value.x"),  # a number as text
        (click(float("nan"), 2), "value.x"),
        (click(True, 2), "value.x"),
        (box(1, 2, 0, 5), "no area"),
        (box(1, 2, 5, 5, rotation=30), "rotated"),
        (box(1, 2, 5, 5, rotation="abc"), "value.rotation"),  # was a 500
        (box(1, 2, 5, 5, rotation=[1]), "value.rotation"),
        (click(1, 2, positive=False), "no click on an object"),  # only a click off the object
        ("not a result", "clicks"),
    ],
)
def test_a_context_prelabel_cannot_read_is_a_422_naming_it(result: object, says: str) -> None:
    with pytest.raises(RefusedRequestError) as caught:
        read_context([result], 100, 100, "find_all")  # type: ignore[list-item]
    assert caught.value.status == 422 and says in str(caught.value)


def test_answers_go_to_the_projects_own_controls_never_the_smart_ones() -> None:
    smart = smart_controls(CONFIG)
    assert smart == {"click", "find_all"}
    kept = prompt_config(parse_label_config(CONFIG), smart)
    assert [c.name for c in kept.controls] == ["mask", "box"]
    assert smart_controls("<View><Image") == frozenset()  # broken XML: the config parser says why


def test_region_ids_are_new_and_shared_ids_stay_shared() -> None:
    results = [{"id": "det0", "v": 1}, {"id": "det0", "v": 2}, {"id": "det0-mask", "v": 3}]
    renamed = fresh_ids(results)
    assert renamed[0]["id"] == renamed[1]["id"] != renamed[2]["id"]
    assert {r["id"] for r in renamed}.isdisjoint({"det0", "det0-mask"})
    assert fresh_ids(results)[0]["id"] != renamed[0]["id"]  # each answer its own


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Basic " + base64.b64encode(b"ls:pw").decode(), True),
        ("basic " + base64.b64encode(b"ls:pw").decode(), True),  # the scheme in any case
        ("Basic " + base64.b64encode(b"ls:pw2").decode(), False),  # wrong password
        ("Basic " + base64.b64encode(b"ls2:pw").decode(), False),  # wrong user
        ("Basic !!!", False),  # not base64
        ("Basic " + base64.b64encode(b"\xff:pw").decode(), False),  # not UTF-8
        ("Bearer ls:pw", False),
        (None, False),
    ],
)
def test_basic_auth_takes_exactly_its_credentials(header: str | None, ok: bool) -> None:
    assert basic_auth_ok(header, "ls", SecretStr("pw")) is ok


def test_a_hand_over_names_tasks_and_nothing_else() -> None:
    params = PreannotateParams(project_id=3, task_ids=[5, 6], model="ocr")
    assert params.task_ids == [5, 6] and params.input_dir is None
    for wrong, says in (
        ({"input_dir": "x"}, "exactly one"),  # two sources
        ({"import_new": True}, "import_new"),  # tasks that exist are not imported
        ({"task_ids": [0]}, "task ids"),
    ):
        with pytest.raises(ValidationError, match=says):
            PreannotateParams(**{"project_id": 3, "task_ids": [5], "model": "ocr", **wrong})
    with pytest.raises(ValidationError, match="exactly one"):
        PreannotateParams(project_id=3, model="ocr")


def test_a_prompt_needs_a_point_or_a_box() -> None:
    from prelabel.predict.models.prompted import Prompt

    with pytest.raises(ValueError, match="a point or a box"):
        Prompt(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="2 points but 1 labels"):
        Prompt(np.zeros((2, 2)), np.zeros(1))


def test_settings_errors_name_the_setting_and_never_a_value() -> None:
    from prelabel.core.errors import SettingsError
    from prelabel.serve.settings import load_serve_settings

    for wrong, says in (
        ({"budget": 500}, "PRELABEL_SERVE_BUDGET: Input should be less than or equal to 90"),
        ({}, "basic auth needs both"),
    ):
        with pytest.raises(SettingsError) as caught:
            load_serve_settings(webhook_secret="hunter2-secret", basic_auth_password="pw-secret", **wrong)
        said = str(caught.value)
        assert says in said and "hunter2" not in said and "pw-secret" not in said
    settings = load_serve_settings(webhook_secret="hunter2-secret")
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_a_project_not_served_here_is_a_403_before_label_studio_is_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prelabel.serve.projects import Projects
    from prelabel.serve.settings import load_serve_settings

    class NeverAsked:
        url = "http://127.0.0.1:9"

        def get_project(self, project_id: int) -> None:
            raise AssertionError(f"Label Studio asked for project {project_id}")

    monkeypatch.setenv("PRELABEL_SERVE_PROJECTS", "[3, 5]")
    served = load_serve_settings().projects
    assert served == [3, 5]
    with pytest.raises(RefusedRequestError) as caught:
        Projects(NeverAsked(), served).get(4)  # type: ignore[arg-type]
    assert caught.value.status == 403 and "PRELABEL_SERVE_PROJECTS" in str(caught.value)
