"""A migrated empty Prefect database for the test servers on SQLite.

A Prefect server on a new SQLite file spends about 10 s of CPU creating it; on a copy of one
already migrated, about 4 s. The suite starts about ten such servers (each session's local
server, each deployment test's stack), so the migration is run once per Prefect version on this
machine (``prefect server database upgrade``, under a lock: parallel sessions make it once) and
kept in the user cache beside Label Studio's environment. The fresh-database path itself stays
tested: ``test_local_prefect`` starts servers on state folders of its own, with no copy.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import prefect
from filelock import FileLock

__all__ = ["migrated_database", "seed_prefect_database"]


def _folder() -> Path:
    return Path.home() / ".cache" / "prelabel" / "test-prefect-databases"


def migrated_database() -> Path:
    """The migrated empty database of the installed Prefect, made if missing."""
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / f"prefect-{prefect.__version__}.db"
    with FileLock(folder / ".lock"):
        if not template.is_file():
            _migrate(template)
    return template


def _migrate(template: Path) -> None:
    scratch = template.parent / f"scratch-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    made = scratch / "prefect.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "PREFECT_HOME": str(scratch),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{made}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not made.is_file():
            said = (done.stdout + done.stderr)[-3000:]
            raise RuntimeError(f"migrating an empty Prefect database failed:\n{said}")
        # SQLite's backup: one file holding what the write-ahead log had, whatever the journal mode
        partial = template.with_suffix(".partial")
        with closing(sqlite3.connect(made)) as source, closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)
        partial.replace(template)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def seed_prefect_database(database: Path) -> None:
    """Put a copy of the migrated empty database at ``database`` (a new server's SQLite file)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_database(), database)
