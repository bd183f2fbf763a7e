"""Bad files never become tasks: every file is checked before anything is uploaded, a file Label
Studio refuses is one error row while the rest import, a name in another Unicode form is the
same name on every rerun, and a dry run changes nothing in Label Studio.

Runs against the strict Label Studio (uploads over ``UPLOAD_LIMIT`` bytes a request refused),
so the refusal is the server's own.
"""

from __future__ import annotations

import csv
import io
import struct
import unicodedata
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from flows.params import PreannotateParams
from flows.preannotate import preannotate
from prelabel.ingest.samples import LABEL_CONFIG, make_samples
from prelabel.labelstudio.client import LabelStudioClient, Project
from prelabel.labelstudio.server import LocalLabelStudio
from tests.conftest import UPLOAD_LIMIT, encode_image, quick_client

NFD_NAME = unicodedata.normalize("NFD", "café.jpg")

# Each bad file and the reason its error row gives (a part of it).
BAD = {
    "empty.jpg": "file is empty (0 bytes)",
    "notes.jpg": "not an image",  # text named .jpg
    "login.jpg": "not an image",  # an HTML page named .jpg
    "cut.jpg": "cannot decode image data (image file is truncated",
    "bomb.png": "image too large to open safely",  # a PNG header claiming 30000 x 30000 pixels
    "scan.tiff": "Label Studio does not accept .tiff uploads",
    # Label Studio's own refusal of a request over its size limit: a 500, every time
    "huge.png": "HTTP 500 on each of 3 tries; not imported",
}


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 100)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _folder(root: Path) -> Path:
    folder = root / "images"
    folder.mkdir()
    samples = make_samples()
    (folder / "good_1.jpg").write_bytes(samples[0].data)
    (folder / "good_2.png").write_bytes(encode_image(Image.open(io.BytesIO(samples[1].data)), "PNG"))
    (folder / NFD_NAME).write_bytes(samples[2].data)  # stored decomposed, as macOS writes it
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("shopping list\n")
    (folder / "login.jpg").write_text("<!doctype html><html><body>log in</body></html>")
    (folder / "cut.jpg").write_bytes(samples[3].data[: len(samples[3].data) // 2])
    (folder / "bomb.png").write_bytes(_png_header_only(30_000, 30_000))
    (folder / "scan.tiff").write_bytes(encode_image(Image.new("RGB", (32, 24)), "TIFF"))
    noise = np.random.default_rng(1).integers(0, 255, (900, 1000, 3), dtype=np.uint8)
    (folder / "huge.png").write_bytes(encode_image(Image.fromarray(noise), "PNG"))
    assert (folder / "huge.png").stat().st_size > UPLOAD_LIMIT
    return folder


@pytest.fixture
def strict(
    strict_label_studio: LocalLabelStudio, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LabelStudioClient]:
    monkeypatch.setenv("PRELABEL_LS_URL", strict_label_studio.url)
    monkeypatch.setenv("PRELABEL_LS_API_KEY", strict_label_studio.legacy_token.get_secret_value())
    with quick_client(strict_label_studio) as client:
        yield client


def _errors(out: Path) -> dict[str, str]:
    with (out / "errors.csv").open(newline="") as handle:
        return {Path(row["file"]).name: f"{row['stage']}: {row['error']}" for row in csv.DictReader(handle)}


def test_only_good_files_become_tasks_once(
    strict: LabelStudioClient, prefect_server: str, tmp_path: Path
) -> None:
    folder = _folder(tmp_path)
    project: Project = strict.create_project("import checks", LABEL_CONFIG)

    def run(dry_run: bool) -> object:
        params = PreannotateParams(
            project_id=project.id,
            input_dir=str(folder),
            model="ocr",
            import_new=True,
            dry_run=dry_run,
            model_version="ocr-import",
            cache_dir=str(tmp_path / "cache"),
            output_dir=str(tmp_path / "out"),
            unmatched_csv=str(tmp_path / "out" / "unmatched_labels.csv"),
        )
        return preannotate(params)

    planned = run(dry_run=True)
    assert list(strict.iter_tasks(project.id)) == []  # the dry run created and uploaded nothing
    assert planned.imported == 4  # good_1, good_2, café and huge (only Label Studio knows it will refuse it)
    assert planned.posted == 0
    checked = _errors(tmp_path / "out")
    assert set(checked) == set(BAD) - {"huge.png"}
    for name, reason in checked.items():
        assert reason.startswith("import: ") and BAD[name] in reason, (name, reason)

    first = run(dry_run=False)
    stored = [t.image_ref("image").rsplit("-", 1)[-1] for t in strict.iter_tasks(project.id)]
    names = sorted(unicodedata.normalize("NFC", unquote(name)) for name in stored)
    assert names == ["café.jpg", "good_1.jpg", "good_2.png"]
    assert first.imported == 3 and first.posted == 3 and first.failed == len(BAD)
    refused = _errors(tmp_path / "out")
    assert set(refused) == set(BAD)
    for name, reason in refused.items():
        assert BAD[name] in reason, (name, reason)

    again = run(dry_run=False)
    assert again.imported == 0 and again.posted == 0 and again.skipped == 3
    assert len(list(strict.iter_tasks(project.id))) == 3
    assert strict.model_versions(project.id) == {"ocr-import": 3}
