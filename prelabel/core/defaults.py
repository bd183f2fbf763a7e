"""Defaults that the command line shows in its help, in a module that imports nothing.

``prelabel --help`` builds every command's options, defaults included; with the defaults
here rather than beside the code that applies them (OpenCV, Pillow, pycocotools), help and
``prelabel version`` load no image or model library. Those modules import their default
from here, so each value has one source.
"""

from __future__ import annotations

__all__ = ["DEFAULT_KEYPOINT_TOLERANCE", "DEFAULT_MAX_PIXELS", "DEFAULT_TOLERANCE", "LOCAL_FILES_PREFIX"]

DEFAULT_TOLERANCE = 1.0
"""Pixels a simplified polygon outline may stray from the traced one (``convert.contours``)."""

DEFAULT_MAX_PIXELS = 100_000_000
"""Refuse images above 100 megapixels unless told otherwise (decompression bombs)."""

LOCAL_FILES_PREFIX = "/data/local-files/?d="
"""Label Studio's local-files URL prefix, before the URL-encoded path (``prelabel convert``)."""

DEFAULT_KEYPOINT_TOLERANCE = 0.02
"""Keypoint match distance, a fraction of the image diagonal. COCO's OKS, exp(-d² / 2s²k²)
with s² the object's area and k = 2 sigma, is 0.5 (its AP50 threshold) for a keypoint of the
mean sigma of COCO's 17 (0.067) on a person at COCO's medium/large boundary (96² px) in a
640x480 image at d = 15 px, 0.019 of the diagonal; a single Label Studio point has no area,
so the diagonal stands in for the object's size."""
