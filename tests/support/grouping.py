"""How a parallel run (``pytest -n N --dist loadgroup``) deals out the tests: by group, longest first.

A group is a test file (its module fixtures and the session fixtures it needs are made in one
process), except where files must not overlap: they share a group and run one after another.
pytest-xdist's own ``loadgroup`` reads ``xdist_group`` marks by renaming node ids, which pytest 9
no longer reads back, so every test went out on its own; this scheduler groups by node id instead.

Groups go out longest first (what is left to deal then fills the gaps): a long group dealt last
would run alone at the end. The longest groups on the CI machine are named here; the rest keep
their collection order (end-to-end, then integration, then unit).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pytest import Config
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

__all__ = ["GroupScheduling", "dealing_order", "group_of"]

# Files whose tests kill or interrupt Prefect workers and time heartbeats: two groups, each
# running its files one after another, so that no more than two load the machine at once (a
# killed worker's crash must be seen within its window).
_TOGETHER = {
    "test_deployments.py": "deployments",
    "test_export_deployments.py": "exports-and-interrupts",
    "test_interrupts.py": "exports-and-interrupts",
}
# The longest groups, dealt first, longest first.
_FIRST = (
    "deployments",
    "exports-and-interrupts",
    "tests/e2e/test_container_images.py",
    "tests/e2e/test_benchmarks.py",
    "tests/e2e/test_serve_labelstudio.py",
)


def group_of(nodeid: str) -> str:
    """The group of a test: its file's, or the group its file runs in with others."""
    path = nodeid.split("::", 1)[0]
    return _TOGETHER.get(PurePosixPath(path).name, path)


def dealing_order(nodeid: str) -> int:
    """Where a test's group stands in the order groups are dealt: the named ones first."""
    group = group_of(nodeid)
    return _FIRST.index(group) if group in _FIRST else len(_FIRST)


class GroupScheduling(LoadScopeScheduling):
    """pytest-xdist's scope scheduling with ``group_of`` as the scope, dealt in collection order
    (the collection is sorted by ``dealing_order`` in each process, the same in all)."""

    def __init__(self, config: Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        # not by the number of tests in a group: a handful of slow tests would go last
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        return group_of(nodeid)
