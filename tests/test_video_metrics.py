"""Track metrics per label through motrics: perfect tracks, a swapped identity, misses, labels apart."""

from __future__ import annotations

import pytest

from prelabel.video.metrics import VideoPair, track_scores
from prelabel.video.mot import MotRow


def _track(track: int, frames: range, x: float, label: str = "car") -> list[MotRow]:
    return [MotRow(f, track, x + f, 10, 20, 20, label) for f in frames]


def test_the_same_tracks_score_one_on_every_metric() -> None:
    people = _track(1, range(1, 11), 0) + _track(2, range(1, 11), 50)
    (score,) = track_scores([VideoPair("a", people, people, 10)])
    assert (score.mota, score.idf1, score.hota) == (1.0, 1.0, pytest.approx(1.0))
    assert (score.people_tracks, score.model_tracks, score.id_switches) == (2, 2, 0)


def test_a_switched_identity_costs_idf1_and_a_miss_costs_mota() -> None:
    people = _track(1, range(1, 11), 0)
    switched = _track(7, range(1, 6), 0) + _track(8, range(6, 11), 0)
    (score,) = track_scores([VideoPair("a", people, switched, 10)])
    assert score.id_switches == 1 and score.idf1 == pytest.approx(0.5) and score.hota < 1
    (missed,) = track_scores([VideoPair("a", people, _track(1, range(1, 6), 0), 10)])
    assert missed.misses == 5 and missed.mota == pytest.approx(0.5)


def test_labels_and_videos_are_kept_apart() -> None:
    car, person = _track(1, range(1, 6), 0), _track(1, range(1, 6), 0, "person")
    scores = {
        s.label: s for s in track_scores([VideoPair("a", car, car + person, 5), VideoPair("b", car, [], 5)])
    }
    assert (
        scores["car"].videos == 2 and scores["car"].misses == 5 and scores["car"].mota == pytest.approx(0.5)
    )
    assert scores["person"].mota is None and scores["person"].false_positives == 5  # no people's boxes
