"""Where a checkpoint is read from: a local folder, the Hugging Face cache, or the Hub.

Without a network, transformers retries each Hub request before it gives up (1 min 47 s
observed, then tracebacks). So the Hub is asked only when it can answer:

- a local folder is read from disk alone (the Hub is never asked);
- a path that is not there (``/``, ``./``, ``~``, ``..`` at its start) is a mistake, said at once;
- a Hub id with ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set is read from the local cache;
- otherwise the Hub's endpoint (``HF_ENDPOINT``) is asked once per process, with a
  ``PROBE_SECONDS`` timeout; when it does not answer, the local cache is used.

A Hub id that must come from the cache and is not there fails in one line that says how to
bring the checkpoint over: ``hf download ID --local-dir DIR`` on a machine with a network,
then ``--checkpoint DIR`` (or copy the cache, ``~/.cache/huggingface/hub``, and set
``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

from prelabel.core.errors import SettingsError

__all__ = ["PROBE_SECONDS", "hub_reachable", "offline_requested", "read_locally"]

PROBE_SECONDS = 3.0
_TRUE = {"1", "ON", "YES", "TRUE"}
_LOCAL_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")


def offline_requested() -> bool:
    """Whether the environment says not to use the Hub (as huggingface_hub reads it)."""
    return any(
        os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.cache
def hub_reachable(endpoint: str) -> bool:
    """Whether the Hub's endpoint answers at all (any HTTP status) within ``PROBE_SECONDS``, asked
    once per endpoint. The request runs in a thread of its own: a resolver that hangs (no
    network, no DNS) is not bounded by httpx's timeout, and is left behind."""
    import httpx

    answered: list[bool] = []
    done = threading.Event()

    def probe() -> None:
        try:
            httpx.head(endpoint, timeout=PROBE_SECONDS)
            answered.append(True)
        except httpx.HTTPError:
            pass
        finally:
            done.set()

    threading.Thread(target=probe, name="prelabel-hub-probe", daemon=True).start()
    done.wait(PROBE_SECONDS)
    return bool(answered)


def read_locally(checkpoint: str, revision: str | None) -> bool:
    """Whether to load ``checkpoint`` from disk only (``local_files_only``); a SettingsError when
    it cannot be had from here (see the module docstring)."""
    folder = Path(checkpoint).expanduser()
    if folder.is_dir():
        return True
    if checkpoint.startswith(_LOCAL_PREFIXES) or folder.exists():
        raise SettingsError(f"checkpoint {checkpoint}: no folder of a saved model there")
    offline = offline_requested()
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    if not offline and hub_reachable(endpoint):
        return False
    if _cached(checkpoint, revision):
        return True
    why = "HF_HUB_OFFLINE is set" if offline else f"{endpoint} does not answer"
    raise SettingsError(
        f"checkpoint {checkpoint!r} is not in the local Hugging Face cache and {why}: on a machine with a "
        f"network run `hf download {checkpoint} --local-dir DIR`, copy DIR here and pass --checkpoint DIR"
    )


def _cached(checkpoint: str, revision: str | None) -> bool:
    """Whether the cache holds the checkpoint's ``config.json`` (or an image processor's config)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = [
            try_to_load_from_cache(checkpoint, name, revision=revision)
            for name in ("config.json", "preprocessor_config.json")
        ]
    except ValueError:  # not a valid repository id
        return False
    return any(isinstance(path, str) for path in found)
