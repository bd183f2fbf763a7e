"""Build the CPU image while the test run installs its environment (``scripts/test``).

The install of ``.venv`` takes about half a minute (uv; pip took 90 s of one core); the image
build (the stand-in base when missing, then ``docker/Dockerfile``'s install, about 40 s) would
otherwise run among the tests. Built
here with ``--layers`` under the store's lock, the container tier's own build of the same files
then reuses every layer (and waits for the lock while this one runs): the image the tests run
is still built from the Dockerfile as shipped, by the tests. Standard library only: it runs
before ``.venv`` exists. Prints one line; a failure here fails nothing (the tests build again
and say why).
"""

from __future__ import annotations

import subprocess
import sys
import time

from tests.support import REPO
from tests.support.buildah import BuildahError, buildah_unusable, locked_store
from tests.support.python_base import ensure_python_base

DOCKERFILE = REPO / "docker" / "Dockerfile"
TAG = "prelabel-cpu:latest"  # the tag docker/compose.yaml gives it (tests/e2e/test_docker.py)


def prebuild() -> str:
    """Build the base and the CPU image; what happened, in one line."""
    reason = buildah_unusable()
    if reason is not None:
        return f"prebuild: skipped ({reason})"
    start = time.monotonic()
    try:
        with locked_store() as tool:
            ensure_python_base(tool)
            tool.build(DOCKERFILE, TAG, REPO, timeout=1800)  # tagged: the tests build it again
    except (BuildahError, OSError, subprocess.TimeoutExpired) as exc:
        return f"prebuild: failed after {time.monotonic() - start:.0f} s ({str(exc)[-300:]})"
    return f"prebuild: the CPU image's layers built in {time.monotonic() - start:.0f} s"


if __name__ == "__main__":
    print(prebuild(), file=sys.stderr)
