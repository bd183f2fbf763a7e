"""A flow run in the Prefect UI, in Debian's chromium: the address a command prints opens the
run, completed, with its task runs. With PRELABEL_SCREENSHOTS=<folder> the test saves the
picture the docs show (docs/img/prefect-run.png)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import run_prelabel
from tests.support.browser import chromium, chromium_path
from tests.support.docs_images import docs_image


def test_the_printed_address_shows_the_run_and_its_task_runs(prefect_server: str, tmp_path: Path) -> None:
    chromium_path()  # skip before any work when the browser is missing
    assert run_prelabel("samples", "--output-dir", "photos", cwd=tmp_path).returncode == 0
    done = run_prelabel(
        "infer",
        "--input-dir",
        "photos",
        "--model",
        "ocr",
        "--output-dir",
        "raw",
        "--cache-dir",
        "cache",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (address,) = re.findall(r"^Prefect UI: (http://\S+/runs/flow-run/\S+)$", done.stdout, re.MULTILINE)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
        page.goto(address)
        page.get_by_text("infer-batch", exact=False).first.wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle", timeout=60_000)
        text = page.locator("body").inner_text()
        target = docs_image("prefect-run.png")
        if target is not None:
            page.screenshot(path=str(target))
    assert "Completed" in text and "infer-batch" in text, text[:1000]
    assert "4 images: 4 raw files" in text  # the command's own summary line, in the run's logs
