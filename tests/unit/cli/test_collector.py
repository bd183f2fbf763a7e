"""The command line loads its modules with the garbage collector paused, and works with it on."""

from __future__ import annotations

import gc

import pytest

from prelabel_cli.collector import collector_paused
from tests.support import python_prints


def test_paused_for_the_block_and_on_again_after_it_even_when_it_raises() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # a process that runs commands in turn keeps its garbage collectable
    with pytest.raises(ImportError), collector_paused():
        import prelabel_cli.no_such_module  # noqa: F401
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_entry_point_runs_the_command_with_the_collector_on_and_the_loaded_modules_frozen() -> None:
    shown = python_prints(
        "import gc, sys\n"
        "import prelabel_cli.app as app\n"
        "run = app.main\n"
        "def main():\n"
        "    print('collector on' if gc.isenabled() else 'collector off')\n"
        "    print('loaded modules frozen' if gc.get_freeze_count() > 10000 else 'nothing frozen')\n"
        "    run()\n"
        "app.main = main\n"
        "sys.argv = ['prelabel', 'version']\n"
        "from prelabel_cli.main import main as entry\n"
        "entry()\n"
    )
    assert shown.splitlines()[:2] == ["collector on", "loaded modules frozen"]
