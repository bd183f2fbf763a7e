"""Video projects against the real Label Studio: ``prelabel run`` with a tiny random SAM 3 video
model as a user runs it (a subprocess), one region per track, posted once per model version;
and people's keyframes pulled back as MOT with the frames and boxes the frontend draws."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from prelabel.convert.geometry import xyxy_to_percent
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.projects import build_video_config
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.video.keyframes import box_iou_xywh, expand
from prelabel.video.probe import probe_video
from prelabel.video.pull import pull_mot
from prelabel.video.regions import keyframes_of
from prelabel.video.timeline import frames_count, shown_frames
from prelabel.video.tracks import VideoTracks
from tests.conftest import run_prelabel
from tests.support.cli import CliRun
from tests.support.videos import write_video


def test_run_sam3_video_posts_one_region_per_track_once(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    tiny_sam3_video: Path,
    tmp_path: Path,
    cli: CliRun,
) -> None:
    project = ls_client.create_project("prelabel video", build_video_config(["car", "person"]))
    (tmp_path / "videos").mkdir()
    path = write_video(tmp_path / "videos" / "street.webm", frames=10)
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "HF_HUB_OFFLINE": "1",
        "PRELABEL_LS_API_KEY": label_studio.personal_token.get_secret_value(),
    }
    args = [
        "run",
        "--input-dir",
        "videos",
        "--project-id",
        str(project.id),
        "--model",
        "sam3-video",
        "--import-new",
        "--cache-dir",
        "cache",
        "--output-dir",
        "out",
        "--model-version",
        "tracks-v1",
        f"--model-option=checkpoint={tiny_sam3_video}",
        "--model-option=threshold=0",
        "--model-option=new_object_threshold=0",
        "--model-option=max_objects=2",
        "--model-option=hotstart_delay=2",
        "--model-option=device=cpu",
    ]
    done = cli(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    (task,) = ls_client.iter_tasks(project.id, full=True)
    assert task.data["fps"] == "12" and (task.data["width"], task.data["height"]) == ("96", "64")
    (prediction,) = [p for p in task.predictions if p["model_version"] == "tracks-v1"]
    video = probe_video(path)
    entries = list((tmp_path / "cache" / "markers" / "tracks").rglob("*.json"))
    assert len(entries) == 1  # one video, tracked once, cached by its bytes and the model signature
    found = VideoTracks.from_json(json.loads(entries[0].read_text()))
    assert found.tracks and len(prediction["result"]) == len(found.tracks)  # one region per track
    count = frames_count(video.duration, 12.0)
    shown = shown_frames(video.times, 12.0, count)
    for result, track in zip(prediction["result"], found.tracks, strict=True):
        assert (
            result["type"] == "videorectangle"
            and result["from_name"] == "box"
            and result["to_name"] == "video"
        )
        value = result["value"]
        assert value["framesCount"] == count == 10 and value["labels"] == [track.label]
        assert result["score"] == np.float64(track.score)
        assert all(
            set(k) == {"frame", "time", "x", "y", "width", "height", "rotation", "enabled"}
            for k in value["sequence"]
        )
        drawn, boxes = expand(keyframes_of(result).keyframes, count)
        on = np.isin(shown, track.frames)
        assert drawn.tolist() == (np.flatnonzero(on) + 1).tolist()
        tracked = track.xyxy[np.searchsorted(track.frames, shown[on])]
        truth = np.array([list(xyxy_to_percent(b, 96, 64).values()) for b in tracked])
        assert (box_iou_xywh(boxes[:, :4], truth) >= 0.9).all()

    again = cli(*args, cwd=tmp_path, env=env)  # the same version again: nothing is posted twice
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        "| predictions posted | 0 |" in again.stdout
        and "| skipped (already have this model version) | 1 |" in again.stdout
    )
    (task,) = ls_client.iter_tasks(project.id, full=True)
    assert [p["model_version"] for p in task.predictions].count("tracks-v1") == 1


def test_pull_mot_gives_the_frames_and_boxes_the_frontend_draws(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    project = ls_client.create_project("prelabel video pull", build_video_config(["car", "person"]))
    data = [
        {"video": f"/data/upload/x/{name}.mp4", "fps": 10, "width": 200, "height": 100}
        for name in ("clip", "broken")
    ]
    clip, broken = ls_client.import_tasks(project.id, [{"data": d} for d in data])
    box = {"rotation": 0, "width": 20, "height": 20}
    sequence = [  # as a person saves them: a car from frame 2 to 4 (disabled there), back on 7 and held
        {"frame": 2, "time": 0.2, "x": 10, "y": 10, "enabled": True, **box},
        {"frame": 4, "time": 0.4, "x": 30, "y": 10, "enabled": False, **box},
        {"frame": 7, "time": 0.7, "x": 50, "y": 50, "enabled": True, **box, "width": 10, "height": 10},
    ]

    def region(keys: list[dict[str, object]]) -> dict[str, object]:
        value = {"framesCount": 8, "duration": 0.8, "labels": ["car"], "sequence": keys}
        return {
            "id": "car1",
            "type": "videorectangle",
            "from_name": "box",
            "to_name": "video",
            "value": value,
        }

    ls_client.create_annotation(clip, [region(sequence)])
    ls_client.create_annotation(broken, [region([{"frame": 1}])])
    pulled = pull_mot(ls_client, project.id, tmp_path)
    assert (pulled.videos, pulled.tracks) == (1, 1)
    (error,) = pulled.errors
    assert error.file == "broken.mp4" and "keyframe 0 needs frame, x, y" in error.error
    with (tmp_path / "mot" / "clip.mp4.txt").open() as handle:
        rows = [[float(v) for v in row] for row in csv.reader(handle)]
    # drawn on 2, 3 (halfway), 4 (its own, disabling, frame), then from 7 to the last frame, 8
    assert [int(r[0]) for r in rows] == [2, 3, 4, 7, 8] and {int(r[1]) for r in rows} == {1}
    assert rows[1][2:6] == [40.0, 10.0, 40.0, 20.0]  # x: halfway from 20 to 60 px (10% and 30% of 200)
    assert rows[3][2:6] == rows[4][2:6] == [100.0, 50.0, 20.0, 10.0]
    coco = json.loads((tmp_path / "coco" / "clip.mp4.json").read_text())
    assert len(coco["images"]) == 8 and [a["image_id"] for a in coco["annotations"]] == [2, 3, 4, 7, 8]
    assert {a["track_id"] for a in coco["annotations"]} == {1} and coco["categories"][0]["name"] == "car"


@pytest.mark.usefixtures("prefect_server")
def test_a_shard_of_videos_is_tracked_on_its_worker_into_the_cache_the_parent_reads(
    tiny_sam3_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.infer_shard import infer_shard
    from flows.params import ShardParams
    from prelabel.predict.models import create_model
    from prelabel.predict.models.video import VideoModel
    from prelabel.predict.videos import track_videos
    from prelabel.store.cache import open_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "videos").mkdir()
    paths = [write_video(tmp_path / "videos" / f"cam{n}.webm", frames=6 + n) for n in range(2)]
    options = {
        "checkpoint": str(tiny_sam3_video),
        "classes": ["car"],
        "threshold": 0.0,
        "new_object_threshold": 0.0,
        "max_objects": 2,
        "hotstart_delay": 2,
        "device": "cpu",
    }
    cache_dir = tmp_path / "cache"
    shard = ShardParams(
        images=[str(p) for p in paths],
        shard="videos-0",
        model="sam3-video",
        model_options=options,
        cache_dir=str(cache_dir),
    )
    summary = infer_shard(shard)
    assert (summary.images, summary.inferred, summary.cached, summary.failed) == (2, 2, 0, 0)
    cache = open_cache(cache_dir)
    marker = cache.get_marker("videos-0")
    assert marker is not None and marker["inferred"] == 2  # the shard's marker: done, by whom
    # The parent, with the same model and options, tracks nothing again: every video from the cache.
    model = create_model("sam3-video", **options)
    assert isinstance(model, VideoModel)
    again = track_videos({str(p): probe_video(p) for p in paths}, model, cache)
    assert (again.inferred, again.cached) == (0, 2)


def test_videos_named_by_s3_keys_and_urls_become_video_tasks_with_their_tracks(
    label_studio: LocalLabelStudio,
    ls_client: LabelStudioClient,
    tiny_sam3_video: Path,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    """Commands in subprocesses, as users run them, with their temporary folder in the test's
    (their copies of remote videos are checked there: tests/unit/ingest/test_remote_videos.py
    checks each copy is made and deleted)."""
    import functools
    import http.server
    import threading

    from prelabel.core.settings import load_settings
    from prelabel.store.s3 import s3_client

    (tmp_path / "served").mkdir()
    (tmp_path / "tmp").mkdir()
    on_s3 = write_video(tmp_path / "served" / "dock.webm", frames=8)
    on_web = write_video(tmp_path / "served" / "gate.webm", frames=6)
    s3 = {
        "PRELABEL_S3_ENDPOINT_URL": s3_endpoint,
        "PRELABEL_S3_REGION": "us-east-1",
        "PRELABEL_S3_ACCESS_KEY_ID": "k",
        "PRELABEL_S3_SECRET_ACCESS_KEY": "s",
    }
    client = s3_client(load_settings(**{k.removeprefix("PRELABEL_").lower(): v for k, v in s3.items()}))
    client.create_bucket(Bucket="tracked-clips")
    client.upload_file(str(on_s3), "tracked-clips", "cams/dock.webm")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    web = f"http://127.0.0.1:{server.server_address[1]}"
    listed = run_prelabel(
        "ingest",
        "--source",
        "s3://tracked-clips/cams/",
        "--manifest",
        "s3.csv",
        "--videos",
        cwd=tmp_path,
        env=s3,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "1 video in s3.csv (1 listed, 0 duplicates, 0 failed)" in listed.stdout, listed.stdout
    with (tmp_path / "s3.csv").open() as handle:
        (row,) = csv.DictReader(handle)
    assert (row["uri"], row["width"], row["frames"], row["fps"]) == (
        "s3://tracked-clips/cams/dock.webm",
        "96",
        "8",
        "12",
    )
    manifest = tmp_path / "videos.csv"
    manifest.write_text(f"uri\n{row['uri']}\n{web}/gate.webm\ns3://tracked-clips/cams/missing.webm\n")
    project = ls_client.create_project("remote videos", build_video_config(["car", "person"]))
    env = {
        **s3,
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.personal_token.get_secret_value(),
        "HF_HUB_OFFLINE": "1",
        "TMPDIR": str(tmp_path / "tmp"),  # where the run keeps its copies of remote videos
    }
    options = [
        f"--model-option=checkpoint={tiny_sam3_video}",
        "--model-option=threshold=0",
        "--model-option=new_object_threshold=0",
        "--model-option=max_objects=2",
        "--model-option=hotstart_delay=2",
        "--model-option=device=cpu",
    ]
    args = ["run", "--manifest", str(manifest), "--project-id", str(project.id), "--model", "sam3-video"]
    try:
        more = ["--import-new", "--output-dir", "out", "--model-version", "remote-v1", *options]
        done = run_prelabel(*args, *more, cwd=tmp_path, env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1, done.stderr[-3000:]  # one video is missing: its row, the rest done
    errors = (tmp_path / "out" / "errors.csv").read_text()
    assert "s3://tracked-clips/cams/missing.webm: S3 answered 404" in errors
    tasks = {t.data["video"]: t for t in ls_client.iter_tasks(project.id, full=True)}
    assert set(tasks) == {"s3://tracked-clips/cams/dock.webm", f"{web}/gate.webm"}  # referenced, not uploaded
    for uri, path in (("s3://tracked-clips/cams/dock.webm", on_s3), (f"{web}/gate.webm", on_web)):
        video = probe_video(path)
        task = tasks[uri]
        assert (task.data["width"], task.data["height"], task.data["fps"]) == ("96", "64", "12")
        (prediction,) = task.predictions
        assert prediction["model_version"] == "remote-v1" and prediction["result"]  # tracks (threshold 0)
        assert all(r["value"]["framesCount"] == video.frames for r in prediction["result"])
    assert list((tmp_path / "tmp").glob("prelabel-video-*")) == []  # each copy deleted once read
