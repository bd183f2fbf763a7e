"""A stand-in for ``python:3.11-slim-bookworm``, the Dockerfiles' base, made from Debian's mirror.

Docker Hub is out of reach here, Debian's package mirror is not: ``debootstrap --variant=minbase
bookworm`` with python3, python3-venv and python-is-python3 gives the same Debian release with
its Python 3.11 (the official image builds its own 3.11 in /usr/local; both have ``python``,
``venv`` and ``pip`` and run as root until the Dockerfile says otherwise). Committed under the
official name, so the Dockerfiles build as shipped with ``--pull-never``. This machine's CA bundle
goes in with ``PIP_CERT`` naming it: where the package index is reached through a proxy with its
own certificate authority, pip in the image needs it. The base is kept in the store and made
again when this recipe or the bundle changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.buildah import Buildah, BuildahError

__all__ = ["BASE", "ensure_python_base", "host_ca_bundle"]

BASE = "docker.io/library/python:3.11-slim-bookworm"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
CA_IN_IMAGE = "/etc/ssl/certs/build-host-ca.crt"
RECIPE_LABEL = "org.prelabel.stand-in-recipe"


def host_ca_bundle() -> Path:
    """The CA bundle pip uses on this machine (``PIP_CERT``, else the system's default)."""
    named = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    named = named or ssl.get_default_verify_paths().cafile
    if not named or not Path(named).is_file():
        raise FileNotFoundError(f"no CA bundle found for pip (PIP_CERT, SSL_CERT_FILE: {named!r})")
    return Path(named)


def _recipe(bundle: Path) -> str:
    parts = [BASE, SUITE, MIRROR, *PACKAGES, CA_IN_IMAGE, hashlib.sha256(bundle.read_bytes()).hexdigest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _cached_recipe(buildah: Buildah) -> str | None:
    if not buildah.has_image(BASE):
        return None
    labels = buildah.inspect(BASE)["OCIv1"]["config"].get("Labels") or {}
    return labels.get(RECIPE_LABEL)


def ensure_python_base(buildah: Buildah, timeout: float = 900) -> float:
    """Make the stand-in base unless the store holds one of this recipe; the seconds it took (0 when
    cached). Needs root (debootstrap) and Debian's mirror."""
    bundle = host_ca_bundle()
    recipe = _recipe(bundle)
    if _cached_recipe(buildah) == recipe:
        return 0.0
    if shutil.which("debootstrap") is None:
        raise BuildahError("debootstrap is not installed: scripts/bootstrap installs it with buildah (apt)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=buildah.store) as work:
        root = Path(work) / "root"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(root), MIRROR],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            said = (done.stdout + done.stderr)[-4000:]
            raise BuildahError(f"debootstrap exited {done.returncode}:\n{said}")
        # What the official slim image leaves out too: downloaded packages and package lists.
        for leftover in [*root.glob("var/cache/apt/archives/*.deb"), *root.glob("var/lib/apt/lists/*_*")]:
            leftover.unlink()
        shutil.copyfile(bundle, root / CA_IN_IMAGE.lstrip("/"))
        with buildah.container("scratch") as container:
            mounted = buildah("mount", container).strip()
            subprocess.run(["cp", "-a", f"{root}/.", mounted], check=True)
            buildah("umount", container)
            buildah(
                "config",
                "--env",
                "LANG=C.UTF-8",
                "--env",
                f"PIP_CERT={CA_IN_IMAGE}",
                "--label",
                f"{RECIPE_LABEL}={recipe}",
                "--cmd",
                "python3",
                container,
            )
            buildah("commit", "--quiet", container, BASE)
    buildah("rmi", "--prune")  # the base this one replaced, if any
    return time.monotonic() - start
