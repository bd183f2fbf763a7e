"""Shared test helpers: images made on the fly, so no binary fixtures are committed."""

from __future__ import annotations

import io

import pytest
from PIL import Image


def encode_image(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """Bytes of ``image`` saved in ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.fixture
def jpeg_bytes() -> bytes:
    return encode_image(Image.new("RGB", (64, 48), (200, 30, 30)))
