"""Videos made with PyAV: probed without decoding (rate, variable rates by timestamps, size, hash),
streamed in chunks, and Label Studio's frame grid over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from prelabel.core.errors import LabelMapError, SourceError
from prelabel.labelstudio.config import parse_label_config
from prelabel.labelstudio.labelmap import LabelMap, require_targets
from prelabel.labelstudio.projects import build_video_config
from prelabel.video.decode import iter_chunks
from prelabel.video.probe import probe_video, upload_problem
from prelabel.video.timeline import frames_count, ls_frame_rate, shown_frames
from tests.support.videos import write_video


@pytest.mark.parametrize("suffix", [".webm", ".mp4"])
def test_probe_reads_frames_rate_and_size_without_decoding(tmp_path: Path, suffix: str) -> None:
    video = probe_video(write_video(tmp_path / f"clip{suffix}", frames=12, fps=12))
    assert (video.width, video.height, video.frames) == (96, 64, 12)
    assert video.duration == pytest.approx(1.0, abs=2e-3) and video.rate == pytest.approx(12, abs=0.05)
    assert not video.variable and video.times[0] == 0
    assert len(video.sha256) == 64 and upload_problem(video.path) is None


def test_a_variable_rate_is_told_by_its_timestamps(tmp_path: Path) -> None:
    times = [0, 0.1, 0.15, 0.3, 0.32, 0.5, 0.6, 0.7, 0.75, 0.9, 1.0, 1.2]
    video = probe_video(write_video(tmp_path / "vfr.mp4", times=times))
    assert video.variable and video.times.tolist() == pytest.approx(times, abs=1e-3)
    assert video.frames == 12 and video.duration > 1.2


def test_frames_come_in_chunks_in_order(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.webm", frames=12)
    chunks = list(iter_chunks(path, 5))
    assert [(c.start, len(c)) for c in chunks] == [(0, 5), (5, 5), (10, 2)]
    first = chunks[0].rgb[0]
    assert first.shape == (64, 96, 3) and (first[8, 6] > first[8, 6].min() + 100).any()  # the red shape


def test_what_cannot_be_read_or_uploaded_says_so(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match=r"broken\.mp4"):
        probe_video(tmp_path / "broken.mp4")
    problem = upload_problem(str(write_video(tmp_path / "clip.mkv")))
    assert problem is not None and "does not accept .mkv" in str(problem)


def test_label_studio_frames_show_the_decoded_frame_at_their_time() -> None:
    steady = np.arange(10) / 10.0
    assert shown_frames(steady, 10, frames_count(1.0, 10)).tolist() == list(
        range(10)
    )  # frame k: k-th picture
    assert shown_frames(steady, 5, frames_count(1.0, 5)).tolist() == [0, 2, 4, 6, 8]  # counted at 5 fps
    variable = np.array([0, 0.1, 0.15, 0.17, 0.32, 0.5])
    # 0.2 s and 0.3 s both show the 0.17 picture; the 0.15 one is on no Label Studio frame
    assert shown_frames(variable, 10, 6).tolist() == [0, 1, 3, 3, 4, 5]
    video = parse_label_config(build_video_config(["car", "person"])).video
    assert (
        ls_frame_rate(video, {"fps": "25"}) == 25 and ls_frame_rate(video, {}) == 24
    )  # the frontend's default
    fixed = parse_label_config('<View><Video name="v" value="$v" framerate="0.5"/></View>').video
    assert ls_frame_rate(fixed) == 2  # a rate below 1 is read as its inverse, as the frontend does


def test_a_label_map_targets_a_video_projects_labels() -> None:
    config = parse_label_config(build_video_config(["car", "person"]))
    assert config.media.kind == "Video" and config.label_names == ("car", "person")
    require_targets(LabelMap({"truck": "car"}), config, "map.json")  # a label of the video: taken
    with pytest.raises(
        LabelMapError, match=r"'bus' \(for 'coach'\) is not a label of the project; its labels: car"
    ):
        require_targets(LabelMap({"coach": "bus"}), config, "map.json")
