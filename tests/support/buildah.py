"""buildah for the container tier: the Dockerfiles built and run without a Docker engine.

Images live in a store of the tier's own (``~/.cache/prelabel/containers``, overlay driver):
nothing else on the machine is touched, the stand-in base stays cached between runs, and a
session holds the store's lock while it builds, so two sessions cannot retag each other's
images. Builds and runs use ``--isolation chroot``: no OCI runtime and no network namespace,
which is what a CI machine without a container engine offers (as root).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Buildah", "BuildahError", "Built", "buildah_unusable", "locked_store"]

STORE = Path.home() / ".cache" / "prelabel" / "containers"


class BuildahError(RuntimeError):
    """A buildah command failed: the command and the end of its output."""


@dataclass(frozen=True)
class Built:
    """An image built from a Dockerfile: its tag, the build's wall time, its layers' bytes."""

    tag: str
    seconds: float
    size: int


@dataclass(frozen=True)
class Buildah:
    """buildah on one store."""

    store: Path = STORE

    def command(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--root",
            str(self.store / "storage"),
            "--runroot",
            str(self.store / "run"),
            "--storage-driver",
            "overlay",
            *args,
        ]

    def __call__(self, *args: str, timeout: float = 600) -> str:
        """Run ``buildah *args``; its standard output, or ``BuildahError`` with what it said."""
        done = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            said = (done.stdout + done.stderr)[-4000:]
            raise BuildahError(f"buildah {' '.join(args)} exited {done.returncode}:\n{said}")
        return done.stdout

    def has_image(self, name: str) -> bool:
        found = subprocess.run(
            self.command("inspect", "--type", "image", name), capture_output=True, check=False
        )
        return found.returncode == 0

    def inspect(self, name: str) -> dict[str, Any]:
        inspected: dict[str, Any] = json.loads(self("inspect", "--type", "image", name))
        return inspected

    def size(self, name: str) -> int:
        """Bytes of the image's layers, uncompressed (what it takes on a host's disk)."""
        manifest = json.loads(str(self.inspect(name)["Manifest"]))
        return sum(int(layer["size"]) for layer in manifest["layers"])

    def build(self, dockerfile: Path, tag: str, context: Path, timeout: float) -> Built:
        """``docker build`` as buildah does it: the base must be in the store (``--pull-never``);
        ``RUN`` steps share the host's network (they install from the package index). Each step's
        layer is kept (``--layers``), so a build of the same Dockerfile and files again, such as
        the one the whole test run starts beside its install (``tests/support/prebuild.py``),
        reuses them; ``prune`` removes them."""
        start = time.monotonic()
        self(
            "bud",
            "--layers",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--pull-never",
            "-f",
            str(dockerfile),
            "-t",
            tag,
            str(context),
            timeout=timeout,
        )
        return Built(tag, time.monotonic() - start, self.size(tag))

    def prune(self) -> None:
        """Remove the images no tag names (the layers builds kept); the tagged base stays."""
        self("rmi", "--prune")

    @contextlib.contextmanager
    def container(self, image: str) -> Iterator[str]:
        """A working container of ``image``, removed afterwards."""
        name = self("from", "--pull-never", image).strip().splitlines()[-1]
        try:
            yield name
        finally:
            self("rm", name)

    def run(
        self,
        image: str,
        *command: str,
        volumes: dict[Path, str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """``command`` in a fresh container of ``image``, as the image's user in its working
        folder; ``volumes`` maps host folders to paths in it, ``env`` adds variables. Chroot
        isolation shares the host's network (buildah allows no other with it)."""
        options = [f"--volume={host}:{inside}" for host, inside in (volumes or {}).items()]
        options += [f"--env={name}={value}" for name, value in (env or {}).items()]
        with self.container(image) as name:
            run = self.command("run", "--isolation", "chroot", *options, name, "--", *command)
            return subprocess.run(run, capture_output=True, text=True, timeout=timeout, check=False)

    def remove_containers(self) -> None:
        """Containers left by a run that was killed (the store's lock is held: none is in use)."""
        self("rm", "--all")


def buildah_unusable() -> str | None:
    """Why buildah cannot run here at all, or None: not installed, or this account cannot make a
    container (rootless without user namespaces, no overlay mounts)."""
    if shutil.which("buildah") is None:
        return "buildah is not installed (scripts/bootstrap installs it with apt on Debian)"
    try:
        with Buildah().container("scratch"):
            pass
    except BuildahError as exc:
        return f"buildah cannot make a container on this machine: {exc}"
    return None


@contextlib.contextmanager
def locked_store(store: Path = STORE) -> Iterator[Buildah]:
    """The store, held for this session alone (another session waits for it)."""
    store.mkdir(parents=True, exist_ok=True)
    with (store / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        buildah = Buildah(store)
        buildah.remove_containers()
        yield buildah
