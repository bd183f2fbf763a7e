"""Matching files to tasks: URL forms, normalisation, fuzzy fallback, ambiguity."""

from __future__ import annotations

import pytest

from prelabel.labelstudio.matching import match_files, name_key, task_file_name


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
    result = match_files(files, tasks)
    assert {(m.file, m.task_id, m.how) for m in result.matches} == {
        ("/local/img_0001.JPG", 1, "exact"),
        ("/local/holiday-beach-2023.jpg", 2, "fuzzy"),
        ("/local/scan.jpeg", 4, "stem"),
    }
    assert [(u.task_id, u.reason) for u in result.unmatched_tasks] == [(3, "no file with this name")]
    assert [m.how for m in match_files(files, tasks, fuzzy=False).matches] == ["exact"]


def test_close_runner_up_is_ambiguous_not_guessed() -> None:
    tasks = [(1, "s3://b/scan_0001_a.jpg"), (2, "s3://b/scan_0001_b.jpg")]
    result = match_files(["scan_0001_c.jpg"], tasks, fuzzy_cutoff=80)
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
    result = match_files(["report_final1.jpg", "report_final2.jpg"], [(9, "s3://b/report_final.jpg")])
    assert not result.matches
    assert result.unmatched_tasks[0].reason.startswith("ambiguous: several files are close")
    assert len(result.unmatched_files) == 2


def test_empty_inputs() -> None:
    result = match_files([], [])
    assert not result.matches and not result.unmatched_files and not result.unmatched_tasks
    assert [u.reason for u in match_files(["a.jpg"], []).unmatched_files] == ["no task with this name"]
