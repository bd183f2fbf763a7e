"""The bad-input set, EXIF orientations and pixel modes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prelabel.core.errors import ImageError, ImageTooLargeError
from prelabel.core.images import load_image, read_image_info, sha256_bytes
from tests.conftest import encode_image


def _oriented_jpeg(orientation: int) -> bytes:
    """A 40x60 (w x h) stored image, red block at the stored top-left, EXIF orientation set."""
    image = Image.new("RGB", (40, 60), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode_image(image, "JPEG", exif=exif, quality=95)


# Where the stored top-left corner is displayed, per EXIF orientation (EXIF 2.3 table).
CORNER = {1: "TL", 2: "TR", 3: "BR", 4: "BL", 5: "TL", 6: "TR", 7: "BR", 8: "BL"}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(orientation: int) -> None:
    loaded = load_image(_oriented_jpeg(orientation), "phone.jpg")
    swapped = orientation >= 5
    expected = (60, 40) if swapped else (40, 60)
    assert (loaded.info.width, loaded.info.height) == expected
    assert loaded.rgb.size == expected
    assert (loaded.info.stored_width, loaded.info.stored_height) == (40, 60)
    assert loaded.info.orientation == orientation
    pixels = loaded.to_array()
    h, w = pixels.shape[:2]
    corners = {"TL": pixels[2, 2], "TR": pixels[2, w - 3], "BL": pixels[h - 3, 2], "BR": pixels[h - 3, w - 3]}
    red = [name for name, rgb in corners.items() if rgb[0] > 200 and rgb[2] < 60]
    assert red == [CORNER[orientation]]
    # The header-only read agrees without decoding pixels.
    info = read_image_info(_oriented_jpeg(orientation), "phone.jpg")
    assert (info.width, info.height) == expected


def test_sha256_is_of_the_original_bytes(jpeg_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes)
    info = load_image(path).info
    assert info.sha256 == sha256_bytes(jpeg_bytes)
    assert info.name == str(path)


def _truncated_jpeg() -> bytes:
    data = encode_image(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG")
    return data[: len(data) // 2]


def _bomb_png() -> bytes:
    """A tiny PNG whose header claims 12000 x 12000 pixels: refused before decoding."""
    return encode_image(Image.new("1", (12_000, 12_000)), "PNG")


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", ImageError, "empty"),  # empty file
        (_truncated_jpeg(), ImageError, "cannot decode"),  # truncated JPEG
        (b"hello, I am text\n" * 10, ImageError, "not an image"),  # text file named .jpg
        (
            b"\xff\xd8\xff\xe0" + b"\x00" * 40,
            ImageError,
            "corrupt|cannot|not an image",
        ),  # JPEG magic, corrupt body
        (_bomb_png(), ImageTooLargeError, "exceeds the limit"),  # decompression bomb
    ],
)
def test_bad_inputs_raise_one_error_type_naming_the_file(
    data: bytes, error: type[ImageError], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        load_image(data, "bad.jpg", max_pixels=50_000_000)
    assert caught.value.name == "bad.jpg"
    assert str(caught.value).startswith("bad.jpg: ")


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"missing\.jpg: cannot read"):
        load_image(tmp_path / "missing.jpg")


def test_pixel_limit_is_configurable(jpeg_bytes: bytes) -> None:
    with pytest.raises(ImageTooLargeError, match="3,072 pixels exceeds the limit of 3,000"):
        load_image(jpeg_bytes, "small.jpg", max_pixels=3000)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode_image(Image.new("CMYK", (10, 8), (0, 255, 255, 0)), "JPEG")
    loaded = load_image(data, "cmyk.jpg")
    assert loaded.info.mode == "CMYK"
    assert loaded.rgb.mode == "RGB"
    r, g, b = loaded.to_array()[4, 5]
    assert r > 200 and g < 60 and b < 60  # cyan-free, magenta+yellow = red


def test_16_bit_png_is_scaled_not_clipped() -> None:
    array = np.full((6, 5), 32768, np.uint16)
    data = encode_image(Image.fromarray(array), "PNG")
    loaded = load_image(data, "deep.png")
    assert loaded.rgb.mode == "RGB"
    assert abs(int(loaded.to_array()[0, 0, 0]) - 127) <= 1


def test_16_bit_rgb_png() -> None:
    # Pillow cannot write 48-bit PNGs; craft one: 2x1, 16-bit RGB, via zlib.
    import zlib

    raw = b"\x00" + struct.pack(">6H", 65535, 0, 0, 0, 32768, 65535)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    pixels = load_image(png, "rgb48.png").to_array()
    assert pixels.shape == (1, 2, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert abs(int(pixels[0, 1, 1]) - 128) <= 1 and pixels[0, 1, 2] == 255


def test_palette_png_with_transparency_is_composited_on_white() -> None:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    data = encode_image(image, "PNG", transparency=0)
    loaded = load_image(data, "pal.png")
    pixels = loaded.to_array()
    assert pixels[0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert pixels[1, 1].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    ("mode", "color"),
    [
        ("L", 128),  # grayscale
        ("LA", (128, 255)),  # grayscale + alpha
        ("RGBA", (10, 20, 30, 255)),  # opaque alpha
        ("1", 1),  # bilevel
    ],
)
def test_other_modes_become_rgb(mode: str, color: object) -> None:
    data = encode_image(Image.new(mode, (3, 3), color), "PNG")
    loaded = load_image(data, f"{mode}.png")
    assert loaded.rgb.mode == "RGB"
    assert loaded.to_array().shape == (3, 3, 3)


def test_rgba_transparent_pixels_become_white() -> None:
    data = encode_image(Image.new("RGBA", (2, 2), (0, 0, 0, 0)), "PNG")
    assert load_image(data, "clear.png").to_array()[0, 0].tolist() == [255, 255, 255]


def test_bytes_without_name_are_labelled() -> None:
    with pytest.raises(ImageError, match=r"^<bytes>: file is empty"):
        load_image(io.BytesIO(b"").getvalue())


def test_the_pixel_limit_names_its_option() -> None:
    data = encode_image(Image.new("RGB", (40, 30)))
    with pytest.raises(
        ImageTooLargeError, match=r"limit of 1,000 \(raise --max-image-pixels / PRELABEL_MAX_IMAGE_"
    ):
        read_image_info(data, "big.jpg", max_pixels=1000)
