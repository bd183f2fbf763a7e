"""Every command that takes more than a few seconds shows progress: the flows feed the command
line's bar (and the Prefect UI's progress artifact) as they go, not only at the end."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from flows.export import export
from flows.ingest import ingest_flow
from flows.params import ExportParams, IngestParams
from tasks.reporting import Progress, progress_listener
from tests.conftest import encode_image


def _folder(root: Path, count: int) -> Path:
    folder = root / "images"
    folder.mkdir()
    for number in range(count):
        (folder / f"img_{number}.jpg").write_bytes(
            encode_image(Image.new("RGB", (40, 30), (number * 40, 9, 9)))
        )
    return folder


def test_ingest_and_export_report_progress_as_they_go(prefect_server: str, tmp_path: Path) -> None:
    folder = _folder(tmp_path, 5)
    seen: list[tuple[str, int, int]] = []

    def listen(progress: Progress) -> None:
        seen.append((progress.unit, progress.done, progress.total))

    with progress_listener(listen):
        ingest_flow(IngestParams(source=str(folder), out=str(tmp_path / "m.csv")))
        ingested = [done for unit, done, _ in seen if unit == "images checked"]
        assert ingested == [0, 1, 2, 3, 4, 5]  # one step per image checked, total not known up front
        seen.clear()
        export(
            ExportParams(
                input_dir=str(folder),
                model="ocr",
                to=str(tmp_path / "pseudo"),
                cache_dir=str(tmp_path / "cache"),
                batch_size=2,
                output_dir=str(tmp_path / "out"),
            )
        )
    assert seen == [("images", 0, 5), ("images", 2, 5), ("images", 4, 5), ("images", 5, 5)]
