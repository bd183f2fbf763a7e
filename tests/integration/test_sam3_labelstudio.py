"""``prelabel run --model sam3`` against the real Label Studio, as a user runs it (subprocesses).

A tiny random SAM 3 is saved to a folder and loaded through ``--model-option checkpoint=``.
Random weights score every query about 0.25, so the runs set ``threshold=0`` (all 5 queries
of each phrase are kept) and, where duplicates should stay apart, ``merge_iou`` above 1.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from prelabel.ingest.samples import make_samples
from prelabel.labelstudio.client import LabelStudioClient, Task
from prelabel.labelstudio.server import LocalLabelStudio
from tests.support.cli import CliRun

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="box" toName="image">
    <Label value="vehicle"/><Label value="person"/>
  </RectangleLabels>
  <BrushLabels name="mask" toName="image">
    <Label value="vehicle"/><Label value="person"/>
  </BrushLabels>
  <PolygonLabels name="outline" toName="image">
    <Label value="person"/>
  </PolygonLabels>
</View>"""


def _regions(tasks: list[Task], version: str) -> Counter[tuple[str, str]]:
    """(result type, label) -> regions in the predictions of ``version`` over ``tasks``."""
    found: Counter[tuple[str, str]] = Counter()
    for task in tasks:
        for prediction in task.predictions:
            if prediction.get("model_version") == version:
                for result in prediction["result"]:
                    kind = result["type"]
                    found[kind, result["value"][kind][0]] += 1
    return found


def test_run_sam3_posts_every_label_prompt_merges_thresholds_exemplars_and_caches(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tiny_sam3: Path, tmp_path: Path, cli: CliRun
) -> None:
    project = ls_client.create_project("prelabel sam3", CONFIG)
    images = tmp_path / "images"
    images.mkdir()
    for sample in make_samples():
        (images / sample.name).write_bytes(sample.data)
    (tmp_path / "prompts.yaml").write_text("vehicle: [car, truck]\n")  # two phrases, one label
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "HF_HUB_OFFLINE": "1",
        "PRELABEL_LS_API_KEY": label_studio.personal_token.get_secret_value(),
    }
    base = [
        "run",
        "--input-dir",
        "images",
        "--project-id",
        str(project.id),
        "--model",
        "sam3",
        "--import-new",
        "--cache-dir",
        "cache",
        "--output-dir",
        "out",
        f"--model-option=checkpoint={tiny_sam3}",
        "--model-option=threshold=0",
    ]

    def run(version: str, *options: str, extra: tuple[str, ...] = ()) -> str:
        done = cli(
            *base,
            "--model-version",
            version,
            *(f"--model-option={o}" for o in options),
            *extra,
            cwd=tmp_path,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    # 1. every label of the project is prompted (vehicle through the prompts file's two phrases)
    run("sam3-open", "prompts=prompts.yaml", "merge_iou=1.01")
    tasks = list(ls_client.iter_tasks(project.id, full=True))
    assert len(tasks) == 4
    regions = _regions(tasks, "sam3-open")
    assert regions["rectanglelabels", "vehicle"] == 4 * 10 and regions["rectanglelabels", "person"] == 4 * 5
    assert regions["brushlabels", "vehicle"] > 0 and regions["brushlabels", "person"] > 0
    assert regions["polygonlabels", "person"] > 0 and ("polygonlabels", "vehicle") not in regions

    # 2. one object found by car and by truck becomes one region
    merged = run("sam3-merged", "prompts=prompts.yaml")
    tasks = list(ls_client.iter_tasks(project.id, full=True))
    assert "merged: one object, several phrases" in merged
    assert (
        sum(
            _regions(tasks, "sam3-merged")[k]
            for k in [("rectanglelabels", "vehicle"), ("rectanglelabels", "person")]
        )
        < 4 * 15
    )

    # 3. a threshold for one label: no person scores 1
    run("sam3-no-person", "merge_iou=1.01", "threshold.person=1.0")
    regions = _regions(list(ls_client.iter_tasks(project.id, full=True)), "sam3-no-person")
    assert regions["rectanglelabels", "vehicle"] == 4 * 5 and regions["rectanglelabels", "person"] == 0

    # 4. exemplars: a box someone drew prompts its label on its own image; new regions reported
    annotated = next(t for t in tasks if "scene_1" in str(t.data))  # a 640 x 480 image
    ls_client.create_annotation(
        annotated.id,
        [
            {
                "id": "drawn",
                "type": "rectanglelabels",
                "from_name": "box",
                "to_name": "image",
                "original_width": 640,
                "original_height": 480,
                "image_rotation": 0,
                "value": {
                    "x": 10,
                    "y": 10,
                    "width": 30,
                    "height": 40,
                    "rotation": 0,
                    "rectanglelabels": ["vehicle"],
                },
            }
        ],
    )
    first = run("sam3-exemplars", "merge_iou=1.01", "exemplars=project")
    assert "exemplar boxes | 1 |" in first and "regions beyond people's boxes" in first
    with (tmp_path / "out" / "new_regions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["task"]), r["label"], r["drawn"], r["found"]) for r in rows] == [
        (annotated.id, "person", "0", "5"),
        (annotated.id, "vehicle", "1", "5"),
    ]
    assert rows[0]["new"] == "5" and int(rows[1]["new"]) <= 5
    tasks = list(ls_client.iter_tasks(project.id, full=True))
    with_boxes = _regions([t for t in tasks if t.id == annotated.id], "sam3-exemplars")
    assert with_boxes["rectanglelabels", "vehicle"] == 5

    # 5. the same run again is served from the cache: the model is not called
    again = run("sam3-exemplars", "merge_iou=1.01", "exemplars=project", extra=("--overwrite",))
    assert "| predictions from the model | 0 |" in again and "| predictions from the cache | 4 |" in again
