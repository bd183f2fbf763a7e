"""The file formats ``pull`` writes, in a module of their own: the flows' parameters and the
command line name them without importing the exporters (pandas)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["FORMATS", "Format"]

Format = Literal["coco", "parquet", "csv", "mot"]  # mot: video projects (prelabel.video.pull)
FORMATS: tuple[Format, ...] = get_args(Format)
