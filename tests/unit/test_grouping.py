"""How a parallel run deals out the tests (tests/support/grouping.py): whole files, the named
groups first, and every named file still there."""

from __future__ import annotations

from tests.support import REPO
from tests.support.grouping import _FIRST, _TOGETHER, dealing_order, group_of


def test_a_file_is_one_group_and_the_worker_killing_files_share_two() -> None:
    assert group_of("tests/unit/core/test_images.py::test_a[1]") == "tests/unit/core/test_images.py"
    assert group_of("tests/unit/core/test_images.py::Class::test_b") == "tests/unit/core/test_images.py"
    assert group_of("tests/e2e/test_export_deployments.py::test_x") == group_of(
        "tests/e2e/test_interrupts.py::test_y[kill]"
    )
    assert group_of("tests/e2e/test_deployments.py::test_z") != group_of("tests/e2e/test_interrupts.py::t")


def test_named_groups_are_dealt_first_in_their_order() -> None:
    ids = [
        "tests/unit/core/test_images.py::t",
        "tests/e2e/test_benchmarks.py::t",
        "tests/e2e/test_interrupts.py::t",
        "tests/e2e/test_deployments.py::t",
    ]
    assert sorted(ids, key=dealing_order) == [ids[3], ids[2], ids[1], ids[0]]


def test_every_named_file_exists() -> None:
    """A renamed file would silently lose its place."""
    files = [name for name in _FIRST if name.startswith("tests/")]
    assert all((REPO / name).is_file() for name in files), files
    assert all(list(REPO.glob(f"tests/**/{name}")) for name in _TOGETHER), _TOGETHER
    assert set(_TOGETHER.values()) <= set(_FIRST)
