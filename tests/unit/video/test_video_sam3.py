"""``sam3-video`` from a tiny random-weight checkpoint loaded through the user path (a folder).

Random weights score every query about 0.25, so the thresholds are 0 and ``max_objects`` caps
how many objects are found (without it they grow every frame); ``hotstart_delay`` is 2 for
videos of a dozen frames."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch

from prelabel.core.errors import SettingsError
from prelabel.predict.models import create_model
from prelabel.predict.models.pixels import normalise_pixels
from prelabel.predict.models.sam3_video import Sam3Video
from prelabel.predict.videos import track_videos
from prelabel.store.cache import open_cache
from prelabel.video.decode import iter_chunks
from prelabel.video.probe import probe_video
from prelabel.video.tracks import TrackBuilder
from tests.support.videos import write_video

OPEN = {
    "threshold": 0.0,
    "new_object_threshold": 0.0,
    "max_objects": 3,
    "hotstart_delay": 2,
    "device": "cpu",
    "dtype": "float32",
}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_streamed_chunks_track_as_transformers_propagates_the_whole_video(
    tiny_sam3_video: Path, tmp_path: Path
) -> None:
    video = probe_video(write_video(tmp_path / "clip.webm", frames=10))
    model = cast(
        Sam3Video,
        create_model(
            "sam3-video", checkpoint=str(tiny_sam3_video), classes="car,person", chunk_frames=4, **OPEN
        ),
    )
    found = model.track(video)
    assert found.tracks and {t.label for t in found.tracks} <= {"car", "person"}
    assert len(found.tracks) <= 3 and all(len(t) for t in found.tracks)

    # the reference: every frame in the session up front, transformers' own propagation
    from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

    network, tokenizer, processor = model._load()
    rgb = np.concatenate([c.rgb for c in iter_chunks(video.path, 100)])
    pixels = normalise_pixels(
        torch.from_numpy(rgb).permute(0, 3, 1, 2), (112, 112), processor["image_mean"], processor["image_std"]
    )
    session = Sam3VideoInferenceSession(
        video=pixels, video_height=video.height, video_width=video.width, dtype=torch.float32
    )
    for phrase in model.phrases:
        prompt = session.add_prompt(phrase)
        encoded = tokenizer(phrase, return_tensors="pt", padding="max_length", max_length=32)
        session.prompt_input_ids[prompt] = encoded.input_ids
        session.prompt_attention_masks[prompt] = encoded.attention_mask
    builder = TrackBuilder()
    kept_frames: list[int] = []
    for output in network.propagate_in_video_iterator(session):
        ids, scores, boxes = model.boxes(network, session, output, video.height, video.width)
        labels = [model._label_of[session.prompts[session.obj_id_to_prompt_id[i]]] for i in ids]
        builder.add(output.frame_idx, ids, boxes, scores, labels)
        kept_frames.append(len(session.processed_frames))
    reference = builder.build(video.frames, video.width, video.height)
    assert max(kept_frames) == video.frames  # the reference holds every frame; the streamed run one
    assert len(found.tracks) == len(reference.tracks)
    for ours, theirs in zip(found.tracks, reference.tracks, strict=True):
        assert ours.labels == theirs.labels and ours.frames.tolist() == theirs.frames.tolist()
        np.testing.assert_allclose(ours.xyxy, theirs.xyxy)
        np.testing.assert_allclose(ours.scores, theirs.scores, rtol=1e-6)


def test_options_reach_the_model_and_the_signature(tiny_sam3_video: Path) -> None:
    model = cast(
        Sam3Video, create_model("sam3-video", checkpoint=str(tiny_sam3_video), classes="car", **OPEN)
    )
    network, _, _ = model._load()
    assert (network.score_threshold_detection, network.max_num_objects, network.hotstart_delay) == (0.0, 3, 2)
    other = create_model(
        "sam3-video", checkpoint=str(tiny_sam3_video), classes="car", **{**OPEN, "max_objects": 4}
    )
    assert model.signature().key != other.signature().key
    with pytest.raises(SettingsError, match="tracks objects through videos"):
        model.predict([])
    with pytest.raises(SettingsError, match="no negative phrases"):
        create_model(
            "sam3-video",
            checkpoint=str(tiny_sam3_video),
            prompts={"car": {"phrases": ["car"], "negatives": ["toy car"]}},
        )


def test_a_fresh_run_posts_the_tracks_the_cache_gives_back(tiny_sam3_video: Path, tmp_path: Path) -> None:
    video = probe_video(write_video(tmp_path / "clip.webm", frames=6))
    model = cast(
        Sam3Video, create_model("sam3-video", checkpoint=str(tiny_sam3_video), classes="car", **OPEN)
    )
    cache = open_cache(tmp_path / "cache")
    first = track_videos({"a.webm": video}, model, cache)
    again = track_videos({"b.webm": video}, model, cache)  # the same bytes under another name
    assert (first.inferred, first.cached, again.inferred, again.cached) == (1, 0, 0, 1)
    fresh, cached = first.tracks["a.webm"], again.tracks["b.webm"]
    assert fresh.tracks and len(fresh.tracks) == len(cached.tracks)
    for ours, kept in zip(fresh.tracks, cached.tracks, strict=True):  # exactly: no rounding apart
        assert np.array_equal(ours.xyxy, kept.xyxy) and np.array_equal(ours.scores, kept.scores)


@pytest.mark.slow
def test_the_session_holds_a_window_of_frames_whatever_the_video_length(
    tiny_sam3_video: Path, tmp_path: Path
) -> None:
    """Past the memory window, what the session holds is bounded by the window and the objects
    tracked, never by the frames seen: the decoded frame, each object's memories of the window
    (old conditioning frames keep only their pointer and score), the current frame's scores."""
    model = cast(
        Sam3Video,
        create_model("sam3-video", checkpoint=str(tiny_sam3_video), classes="car", chunk_frames=4, **OPEN),
    )
    network, _, _ = model._load()
    tracker = network.tracker_model.config
    window = max(tracker.num_maskmem, tracker.max_object_pointers_in_encoder) + 1  # 17 frames here
    frames = 3 * window
    video = probe_video(write_video(tmp_path / "long.webm", frames=frames))
    session = model.session(video)
    kept = {"object_pointer", "object_score_logits"}
    seen, most = 0, {"decoded": 0, "memories": 0, "conditioning": 0, "frame keyed": 0}
    for _ in model.outputs(network, session, video):
        seen += 1
        objects = session.output_dict_per_obj.values()
        now = {
            "decoded": len(session.processed_frames),
            "memories": max((len(o["non_cond_frame_outputs"]) for o in objects), default=0),
            "conditioning": max(
                (sum(1 for e in o["cond_frame_outputs"].values() if set(e) - kept) for o in objects),
                default=0,
            ),
            "frame keyed": max(
                len(session.obj_id_to_tracker_score_frame_wise), len(session.suppressed_obj_ids)
            ),
        }
        most = {k: max(v, now[k]) for k, v in most.items()}
    assert seen == frames  # every frame answered
    assert most["decoded"] <= 1 and most["frame keyed"] <= 1, most
    assert 0 < most["memories"] <= window and most["conditioning"] <= tracker.max_cond_frame_num, most
