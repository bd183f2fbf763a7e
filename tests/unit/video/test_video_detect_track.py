"""``detect-track`` from tiny random-weight checkpoints through the user path (``create_model`` with
``detector.<option>`` options): a DETR (threshold 0) on keyframes, SAM 2's or SAM 3's tracker between.

Random trackers follow nothing, so what is checked is what holds whatever they see: each keyframe
shows exactly the detector's boxes, labels and scores on that frame (and the tracks it keeps),
tracks start on keyframes, the chunk size changes nothing, and the tracker's session holds one
window. Identities by IoU on moving shapes are tests/unit/video/test_video_identities.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import torch

from prelabel.core.errors import SettingsError
from prelabel.predict.models import create_model
from prelabel.predict.models.box_tracker import BoxTracker, drop_old
from prelabel.predict.models.detect_track import DetectTrack, frame_item
from prelabel.predict.output import sane_detections
from prelabel.records import Detections
from prelabel.video.decode import iter_chunks
from prelabel.video.probe import probe_video
from tests.support.videos import write_video

EVERY = 4


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _model(detr: Path, tracker: Path, **options: Any) -> DetectTrack:
    given = {
        "detector": "detr",
        "detector.checkpoint": str(detr),
        "detector.threshold": 0.0,
        "detector.device": "cpu",
        "tracker": str(tracker),
        "every": EVERY,
        "device": "cpu",
        "dtype": "float32",
        **options,
    }
    return cast(DetectTrack, create_model("detect-track", **given))


@pytest.mark.slow
@pytest.mark.parametrize("tracker", ["tiny_sam2_video", "tiny_sam3_tracker"])
def test_keyframes_show_the_detections_and_chunks_change_nothing(
    tracker: str, tiny_detr: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    checkpoint = request.getfixturevalue(tracker)
    video = probe_video(write_video(tmp_path / "clip.webm", frames=11))
    found = _model(tiny_detr, checkpoint, chunk_frames=3).track(video)
    whole = _model(tiny_detr, checkpoint, chunk_frames=100).track(video)
    assert found.to_json() == whole.to_json() and found.frames == 11  # chunks: the same tracks

    detector = create_model("detr", checkpoint=str(tiny_detr), threshold=0.0, device="cpu")
    frames = np.concatenate([c.rgb for c in iter_chunks(video.path, 100)])
    rows = [
        (t, int(f), box, s, label)
        for t in found.tracks
        for f, box, s, label in zip(t.frames, t.xyxy, t.scores, t.labels, strict=True)
    ]
    for key in range(0, 11, EVERY):
        item = frame_item(video, key, frames[key])
        (detected,) = detector.predict([item])
        assert isinstance(detected, Detections) and len(detected) > 0
        detected = sane_detections(detected, item.info)
        shown = [(box, s, label) for t, f, box, s, label in rows if f == key]
        # every detection is a track's box on its keyframe, with its label and score
        for box, score, label in zip(detected.xyxy, detected.scores, detected.labels, strict=True):
            assert any(
                np.allclose(box, b, atol=1e-3) and s == pytest.approx(score, abs=1e-5) and lab == label
                for b, s, lab in shown
            )
        assert len(detected) <= len(shown) <= 2 * len(detected)  # and the tracks kept one keyframe
    assert all(t.frames[0] % EVERY == 0 for t in found.tracks)  # only a detection starts a track


def test_the_session_holds_one_window(tiny_sam2_video: Path) -> None:
    tracker = BoxTracker(str(tiny_sam2_video), None, 0.0, "cpu")
    session = tracker.start(96, 64)
    rng = np.random.default_rng(0)
    sizes = []
    with torch.inference_mode():
        for frame in range(3 * tracker.window):
            tracker.add_frame(
                session, frame, tracker.pixels(rng.integers(0, 255, (1, 64, 96, 3), np.uint8))[0]
            )
            if frame % 8 == 0:  # a keyframe: a new window of two objects
                tracker.seed(session, frame, [frame + 1, frame + 2], [[4, 4, 30, 30], [40, 10, 90, 60]])
            tracker.step(session, frame)
            drop_old(session, frame, tracker.window)
            kept = sum(
                len(o["non_cond_frame_outputs"]) + len(o["cond_frame_outputs"])
                for o in session.output_dict_per_obj.values()
            )
            sizes.append((len(session.processed_frames), session.get_obj_num(), kept))
    assert {s[:2] for s in sizes} == {(1, 2)}  # one decoded frame, the window's objects
    assert max(s[2] for s in sizes) <= 2 * 8  # memories of one window, never the video's


def test_what_cannot_detect_or_track_is_refused(tiny_detr: Path, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="tracks videos itself"):
        create_model("detect-track", detector="sam3-video")
    with pytest.raises(SettingsError, match="reads no pixels"):
        create_model("detect-track", detector="raw-files")
    with pytest.raises(SettingsError, match="refines another model's detections"):
        create_model("detect-track", detector="vitpose")
    with pytest.raises(SettingsError, match="model 'detr' has no option 'nope'"):
        create_model("detect-track", detector="detr", **{"detector.nope": 1})
    with pytest.raises(SettingsError, match="every must be >= 1"):
        create_model("detect-track", detector="detr", every=0)
    model = _model(tiny_detr, tiny_detr)  # a detector's folder is no tracker
    with pytest.raises(SettingsError, match="not a SAM 2 or SAM 3 video tracker"):
        model.track(probe_video(write_video(tmp_path / "clip.webm", frames=2)))


def test_the_signature_follows_the_detector_and_classes_reach_it(
    tiny_detr: Path, tiny_sam2_video: Path
) -> None:
    base = _model(tiny_detr, tiny_sam2_video)
    assert (
        base.signature().key
        != _model(tiny_detr, tiny_sam2_video, **{"detector.threshold": 0.5}).signature().key
    )
    assert base.signature().key != _model(tiny_detr, tiny_sam2_video, every=5).signature().key
    prompted = cast(DetectTrack, create_model("detect-track", classes="car,person", detector="grounded-sam2"))
    assert prompted.detector.signature().params["prompt"] == "car . person ."
