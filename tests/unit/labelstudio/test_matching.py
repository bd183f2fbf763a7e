"""Matching files to tasks: URL forms, normalisation, fuzzy fallback, ambiguity."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from prelabel.labelstudio.matching import (
    MATCHES_REPORT_COLUMNS,
    digit_runs,
    match_files,
    name_key,
    task_file_name,
    write_matches_report,
)


@pytest.mark.parametrize(
    ("reference", "name"),
    [
        ("/data/upload/3/1a2b3c4d-My_Photo_1.jpg", "My_Photo_1.jpg"),  # upload, prefix removed
        ("/data/upload/12/plain.jpg", "plain.jpg"),  # upload without prefix
        ("http://ls:8080/data/upload/3/deadbeef-a.png", "a.png"),  # absolute upload URL
        ("/data/local-files/?d=photos%2Fsub%2FIMG%201.JPG", "IMG 1.JPG"),  # local files, encoded
        ("/data/local-files/?d=C:%5Cdata%5Cwin.jpg", "win.jpg"),  # Windows path in d=
        ("s3://bucket/a/b/c.png", "c.png"),
        ("gs://b/x.jpg", "x.jpg"),
        ("azure-blob://container/dir/y.jpeg", "y.jpeg"),
        ("https://x.s3.amazonaws.com/k/z%20a.jpg?X-Amz-Signature=abc", "z a.jpg"),  # presigned
        ("http://example.com/img.png#frag", "img.png"),
        ("photo.jpg", "photo.jpg"),  # bare name
        ("", ""),  # empty
    ],
)
def test_task_file_name(reference: str, name: str) -> None:
    assert task_file_name(reference) == name


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("My Photo (1).jpg", "My_Photo_1.jpg"),  # Label Studio's upload sanitising
        ("IMG_0001.JPG", "img_0001.jpg"),  # case
        ("caf\u00e9.jpg", "cafe\u0301.jpg"),  # NFC vs NFD
        ("a%20b.jpg", "a b.jpg"),  # URL encoding
    ],
)
def test_name_key_equates(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


def test_exact_then_fuzzy_with_margin() -> None:
    tasks = [
        (1, "s3://b/IMG_0001.jpg"),
        (2, "s3://b/holiday_beach_2023.jpg"),
        (3, "s3://b/other.png"),
        (4, "s3://b/scan.png"),
    ]
    files = ["/local/img_0001.JPG", "/local/holiday-beach-2023.jpg", "/local/scan.jpeg"]
    result = match_files(files, tasks, fuzzy=True)
    assert {(m.file, m.task_id, m.how) for m in result.matches} == {
        ("/local/img_0001.JPG", 1, "exact"),
        ("/local/holiday-beach-2023.jpg", 2, "fuzzy"),
        ("/local/scan.jpeg", 4, "stem"),
    }
    assert [(u.task_id, u.reason) for u in result.unmatched_tasks] == [(3, "no file with this name")]
    assert [(m.file, m.task_image) for m in result.fuzzy] == [
        ("/local/holiday-beach-2023.jpg", "holiday_beach_2023.jpg")
    ]
    assert 90 <= result.fuzzy[0].score < 100
    # Fuzzy is off unless asked for; exact and same-name-other-extension pairs stay.
    default = match_files(files, tasks)
    assert sorted(m.how for m in default.matches) == ["exact", "stem"]
    assert "/local/holiday-beach-2023.jpg" in {u.name for u in default.unmatched_files}
    assert [m.how for m in match_files(files, tasks, stem=False).matches] == ["exact"]


@pytest.mark.parametrize(
    ("file", "task"),
    [
        ("img_0100.jpg", "img_0101.jpg"),  # one digit apart: ratio 91.7
        ("frame_000451.png", "frame_000452.png"),  # video frames: ratio 93.8
        ("IMG_20230101_120000.jpg", "IMG_20230101_120001.jpg"),  # a second later
        ("scan-7.tif", "scan-17.tif"),  # a digit more
        ("photo_1.jpg", "photo.jpg"),  # a number against none
    ],
)
def test_fuzzy_never_pairs_names_whose_digits_differ(file: str, task: str) -> None:
    result = match_files([file], [(5, f"/data/upload/1/0a1b2c3d-{task}")], fuzzy=True, fuzzy_cutoff=80)
    assert not result.matches
    assert [u.reason for u in result.unmatched_files] == ["no task with this name"]


def test_sequential_files_next_to_their_neighbours_tasks_pair_with_nothing() -> None:
    # Files 100-149 against the tasks of 150-199 (and the other way round): all neighbours.
    files = [f"/photos/img_{i:04d}.jpg" for i in range(100, 150)]
    tasks = [(i, f"/data/upload/3/0a1b2c3d-img_{i:04d}.jpg") for i in range(150, 200)]
    for fuzzy in (False, True):
        result = match_files(files, tasks, fuzzy=fuzzy)
        assert not result.matches
        assert len(result.unmatched_files) == 50 and len(result.unmatched_tasks) == 50


@pytest.mark.parametrize(
    ("name", "runs"),
    [
        ("img_0100.jpg", ("0100",)),  # leading zeros kept: 0100 and 100 differ
        ("IMG_20230101_120000.JPG", ("20230101", "120000")),
        ("photo.jpg", ()),  # none
        ("clip.mp4", ()),  # the extension does not count
        ("", ()),  # empty
    ],
)
def test_digit_runs(name: str, runs: tuple[str, ...]) -> None:
    assert digit_runs(name) == runs


def test_matches_report_lists_fuzzy_pairs_with_scores(tmp_path: Path) -> None:
    tasks = [(1, "s3://b/holiday_beach_2023.jpg"), (2, "s3://b/scan.png"), (3, "s3://b/a.jpg")]
    result = match_files(["holiday-beach-2023.jpg", "scan.jpeg", "a.jpg"], tasks, fuzzy=True)
    path = tmp_path / "reports" / "matches.csv"
    path.parent.mkdir()
    assert write_matches_report(path, result) == 2
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == MATCHES_REPORT_COLUMNS
    by_how = {row[3]: row for row in rows[1:]}
    assert by_how["fuzzy"][:3] == ["holiday-beach-2023.jpg", "1", "holiday_beach_2023.jpg"]
    assert 90 <= float(by_how["fuzzy"][4]) < 100
    assert by_how["stem"] == ["scan.jpeg", "2", "scan.png", "stem", "100.0"]
    # No pairs other than exact ones: a header only.
    assert write_matches_report(path, match_files(["a.jpg"], tasks)) == 0
    assert path.read_text().strip() == ",".join(MATCHES_REPORT_COLUMNS)


def test_close_runner_up_is_ambiguous_not_guessed() -> None:
    tasks = [(1, "s3://b/scan_0001_a.jpg"), (2, "s3://b/scan_0001_b.jpg")]
    result = match_files(["scan_0001_c.jpg"], tasks, fuzzy=True, fuzzy_cutoff=80)
    assert not result.matches
    assert result.unmatched_files[0].reason.startswith("ambiguous: tasks 1 and 2 are equally close")


def test_duplicates_on_either_side_are_ambiguous() -> None:
    tasks = [(1, "s3://b/a.jpg"), (2, "gs://c/A.JPG"), (3, "s3://b/b.jpg")]
    result = match_files(["x/a.jpg", "x/b.jpg", "y/b.jpg"], tasks)
    assert not result.matches
    reasons = {u.name: u.reason for u in result.unmatched_files}
    assert reasons["x/a.jpg"] == "ambiguous: tasks 1, 2 share the name"
    assert reasons["x/b.jpg"] == reasons["y/b.jpg"] == "ambiguous: 2 files share the name"
    assert {u.task_id: u.reason for u in result.unmatched_tasks} == {
        1: "ambiguous: 2 tasks share the name",
        2: "ambiguous: 2 tasks share the name",
        3: "ambiguous: 2 files share the name",
    }


def test_two_files_fuzzy_claiming_one_task() -> None:
    files = ["report_final_a.jpg", "report_final_b.jpg"]
    result = match_files(files, [(9, "s3://b/report_final.jpg")], fuzzy=True)
    assert not result.matches
    assert result.unmatched_tasks[0].reason.startswith("ambiguous: several files are close")
    assert len(result.unmatched_files) == 2


def test_empty_inputs() -> None:
    result = match_files([], [])
    assert not result.matches and not result.unmatched_files and not result.unmatched_tasks
    assert [u.reason for u in match_files(["a.jpg"], []).unmatched_files] == ["no task with this name"]
