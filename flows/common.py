"""Settings and secrets, resolved once per flow run."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar, cast

from prefect.utilities.annotations import quote
from pydantic import SecretStr

from flows.params import LabelStudioParams, _PostOptions
from prelabel.labelmap import LabelMap, Normalization, load_label_map
from prelabel.settings import Settings, load_settings
from tasks.common import LabelStudioConnection

__all__ = ["connection", "label_map", "opaque"]

T = TypeVar("T")


def opaque(value: T) -> T:
    """``value`` wrapped in Prefect's ``quote``: the task receives it unwrapped, but Prefect
    does not walk it element by element looking for futures. Measured with
    benchmarks/orchestration.py (10,000 images, dry run): 60 s with plain arguments, 20 s
    with these."""
    return cast(T, quote(value))


def connection(params: LabelStudioParams) -> tuple[Settings, LabelStudioConnection]:
    """Settings from the environment, the URL from the parameters, the key from env or a Secret block."""
    settings = load_settings(ls_url=params.ls_url)
    if params.api_key_block:
        from prefect.blocks.system import Secret

        block: Secret[str] = Secret.load(params.api_key_block)  # type: ignore[assignment]
        key = SecretStr(str(block.get()))
    else:
        key = settings.require_ls_api_key()
    return settings, LabelStudioConnection(settings.ls_url, key, settings.request_timeout)


def label_map(params: _PostOptions) -> LabelMap:
    """The label map: the file's entries, overridden by the inline ones."""
    normalization = Normalization(plurals=params.plurals)
    base = load_label_map(Path(params.label_map_file), normalization).mapping if params.label_map_file else {}
    return LabelMap({**base, **params.label_map}, normalization)
