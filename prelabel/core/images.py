"""Images as Label Studio shows them: EXIF orientation applied, hashed, RGB for models.

Label Studio's labeling UI draws uploaded JPEGs with their EXIF orientation applied and
places prediction percentages against that displayed image (DESIGN.md), so every size
here is the displayed size and every model sees the displayed pixels.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from prelabel.core.defaults import DEFAULT_MAX_PIXELS
from prelabel.core.errors import ImageError, ImageTooLargeError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "ImageInfo",
    "LoadedImage",
    "check_image",
    "load_image",
    "read_image_info",
    "sha256_bytes",
]


FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
"""The formats prelabel opens (MPO, phones' multi-picture JPEG, comes through JPEG); Pillow's
others (EPS calls Ghostscript, ...) are refused."""

# Bytes per pixel of a decoded image by mode, plus 3 for its RGB copy when it is not RGB.
# The budget is max_pixels RGBA pixels' worth: a 16-bit 99 MP PNG no longer passes.
_MODE_BYTES = {
    "1": 1,
    "L": 1,
    "P": 1,
    "LA": 2,
    "La": 2,
    "PA": 2,
    "I;16": 2,
    "I;16L": 2,
    "I;16B": 2,
    "I;16N": 2,
    "RGB": 3,
    "YCbCr": 3,
    "LAB": 3,
    "HSV": 3,
    "RGBA": 4,
    "RGBa": 4,
    "RGBX": 4,
    "CMYK": 4,
    "I": 4,
    "F": 4,
}

_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = frozenset({5, 6, 7, 8})


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the pipeline knows about an image without decoding its pixels.

    ``width``/``height`` are the displayed size in pixels (after EXIF orientation);
    ``stored_width``/``stored_height`` the pixel grid in the file.
    """

    name: str
    sha256: str
    width: int
    height: int
    orientation: int
    stored_width: int
    stored_height: int
    format: str
    mode: str


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """An image decoded for a model: RGB, orientation applied, plus its info."""

    info: ImageInfo
    rgb: Image.Image

    def to_array(self) -> npt.NDArray[np.uint8]:
        """(height, width, 3) uint8 RGB pixels."""
        return np.asarray(self.rgb)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of the original file bytes: the cache key's image half."""
    return hashlib.sha256(data).hexdigest()


def read_image_info(
    source: bytes | str | Path, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageInfo:
    """Hash and header-read an image (no pixel decoding): displayed size and orientation."""
    data, name = _read(source, name)
    with _open(data, name, max_pixels) as image:
        return _info(image, data, name)


def check_image(
    source: bytes | str | Path, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> ImageInfo:
    """Read and decode an image whole, keeping no pixels: what an import checks before it
    uploads (a truncated JPEG reads a good header and only fails when decoded)."""
    data, name = _read(source, name)
    with _open(data, name, max_pixels) as image:
        info = _info(image, data, name)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageError(name, f"cannot decode image data ({exc})") from exc
    return info


def load_image(
    source: bytes | str | Path, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Decode an image fully, apply its EXIF orientation and convert it to RGB.

    CMYK, 16-bit, palette, grayscale and alpha images all come back as 8-bit RGB;
    transparent pixels are composited onto white. Corrupt, empty, truncated and
    non-image input raises ``ImageError`` naming the file.
    """
    data, name = _read(source, name)
    with _open(data, name, max_pixels) as image:
        info = _info(image, data, name)
        try:
            image.load()
            oriented = ImageOps.exif_transpose(image) if info.orientation != 1 else image
            rgb = _to_rgb(oriented)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageError(name, f"cannot decode image data ({exc})") from exc
    if rgb.size != (info.width, info.height):
        raise ImageError(name, f"decoded size {rgb.size} differs from header {info.width}x{info.height}")
    return LoadedImage(info=info, rgb=rgb)


def _read(source: bytes | str | Path, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), name or "<bytes>"
    path = Path(source)
    label = name or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(label, f"cannot read file ({exc.strerror or exc})") from exc
    return data, label


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageError(name, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.init()  # registers every plugin once, so FORMATS can be named
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(name, f"image too large to open safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            name, f"not an image, or a format prelabel cannot read (it reads {', '.join(FORMATS)})"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(name, f"corrupt image header ({exc})") from exc
    pixels = image.width * image.height
    if pixels > max_pixels:
        image.close()
        raise ImageTooLargeError(
            name,
            f"{image.width}x{image.height} = {pixels:,} pixels exceeds the limit of "
            f"{max_pixels:,} (raise --max-image-pixels / PRELABEL_MAX_IMAGE_PIXELS if it is genuine)",
        )
    decoded = pixels * (_MODE_BYTES.get(image.mode, 8) + (0 if image.mode == "RGB" else 3))
    if decoded > max_pixels * 4:
        image.close()
        raise ImageTooLargeError(
            name,
            f"{image.width}x{image.height} {image.mode} needs {decoded / 2**20:,.0f} MiB to decode, over the "
            f"budget of {max_pixels:,} RGBA pixels (raise --max-image-pixels / PRELABEL_MAX_IMAGE_PIXELS if "
            "it is genuine)",
        )
    if pixels == 0:
        image.close()
        raise ImageError(name, f"image has no pixels ({image.width}x{image.height})")
    return image


def _info(image: Image.Image, data: bytes, name: str) -> ImageInfo:
    try:
        orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
    except (OSError, SyntaxError, ValueError, TypeError):
        orientation = 1  # unreadable EXIF: show the pixels as stored, like browsers do
    if orientation not in range(1, 9):
        orientation = 1
    width, height = image.size
    shown = (height, width) if orientation in _SWAPS_AXES else (width, height)
    return ImageInfo(
        name=name,
        sha256=sha256_bytes(data),
        width=shown[0],
        height=shown[1],
        orientation=orientation,
        stored_width=width,
        stored_height=height,
        format=image.format or "unknown",
        mode=image.mode,
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode, scaling deep images instead of clipping them."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in {"I;16", "I;16L", "I;16B", "I;16N"}:
        high = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)  # 16 -> 8 bits, no int64 copy
        return Image.fromarray(high, "L").convert("RGB")
    if mode == "I":
        array = np.asarray(image, dtype=np.int32)
        peak = 65535 if array.max(initial=0) > 255 else 255
        scaled = np.clip(array // (peak // 255), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    if mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float64))
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in {"LA", "La", "RGBa", "PA"}:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")
