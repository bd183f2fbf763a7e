"""Predictions seen in a real browser: Label Studio's labeling page, in Debian's chromium, draws
what `prelabel run` posted on the objects of an EXIF-rotated photo, and selects the predicted
choice. Drawings are read from screenshot pixels (tests/support/screen.py), the choice from the page.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw

from prelabel.convert.masks import mask_to_coco
from prelabel.core.images import load_image
from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.records import Choice, Detections, Keypoint, save_raw_file
from tests.conftest import run_prelabel
from tests.support.browser import chromium, chromium_path, log_in
from tests.support.docs_images import docs_image
from tests.support.screen import Placement, change_map, dot_centre, edge_coverage, quiet_share, share_above

if TYPE_CHECKING:
    from playwright.sync_api import Page

# The photo as displayed (EXIF orientation applied), in its pixels: distinct objects on grey.
WIDTH, HEIGHT = 600, 400
GREY, RED, GREEN, BLUE, YELLOW = (70, 70, 70), (200, 30, 30), (30, 170, 60), (40, 70, 220), (240, 220, 0)
PERSON = (40, 40, 200, 200)  # red square: a box, and two keypoints on its yellow marks
MARKS = {"nose": (85, 85), "tail": (155, 145)}
CAR_MASKED = (300, 40, 440, 160)  # green: a box and a brush
CAR_BOXED = (460, 40, 560, 140)  # same green, same label, a box only: its tint, to tell the brush's apart
DOG = ((300, 360), (540, 360), (420, 220))  # blue triangle: a polygon (and its enclosing box)
DOG_BOX = (300, 220, 540, 360)
BOXES = (PERSON, CAR_MASKED, CAR_BOXED, DOG_BOX)

DRAWN = 40  # a screen pixel this far (0-255) outside the photo's nearby colours is drawn over
MODEL_VERSION = "browser-check"


def _scene() -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), GREY)
    draw = ImageDraw.Draw(image)
    draw.rectangle((PERSON[0], PERSON[1], PERSON[2] - 1, PERSON[3] - 1), fill=RED)
    for x, y in MARKS.values():
        draw.rectangle((x - 5, y - 5, x + 4, y + 4), fill=YELLOW)
    for box in (CAR_MASKED, CAR_BOXED):
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=GREEN)
    draw.polygon(DOG, fill=BLUE)
    return image


def _photo_and_predictions(folder: Path) -> npt.NDArray[np.uint8]:
    """The scene stored sideways with EXIF orientation 6, its raw prediction file beside it (on the
    displayed grid, as every model adapter reports); returns the displayed pixels as decoded."""
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = folder / "scene.jpg"
    _scene().transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", quality=95, exif=exif.tobytes())
    shown = load_image(path)
    assert (shown.info.stored_width, shown.info.stored_height) == (HEIGHT, WIDTH)
    assert shown.rgb.size == (WIDTH, HEIGHT)
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[CAR_MASKED[1] : CAR_MASKED[3], CAR_MASKED[0] : CAR_MASKED[2]] = 1
    person_points = tuple(Keypoint(name, x, y, 0.9) for name, (x, y) in MARKS.items())
    save_raw_file(
        folder / "scene_dinox_preannot.json",
        Detections(
            xyxy=BOXES,
            scores=[0.9, 0.8, 0.8, 0.7],
            labels=["person", "car", "car", "dog"],
            masks=(None, mask_to_coco(mask), None, None),
            polygons=(None, None, None, DOG),
            keypoints=(person_points, None, None, None),
            choices=(Choice("night", 0.9),),
        ),
    )
    return shown.to_array()


def _settled_screenshot(page: Page, timeout: float = 20.0) -> npt.NDArray[np.uint8]:
    """The labeling page once Label Studio has loaded the regions and the image and two screenshots
    in a row are the same (Konva draws on animation frames; the image may still be re-fitted)."""
    page.wait_for_function(
        "() => (window.Htx?.annotationStore?.selected?.regions?.length ?? 0) > 0"
        " && document.querySelector('.lsf-image img')?.naturalWidth > 0",
        timeout=timeout * 1000,
    )
    deadline, last = time.monotonic() + timeout, b""
    while True:
        shot = page.screenshot()
        if shot == last:
            return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
        assert time.monotonic() < deadline, "the labeling page kept changing"
        last = shot
        page.wait_for_timeout(400)


def _placement(page: Page) -> tuple[Placement, tuple[float, float, float, float]]:
    """The displayed image's place on screen (from its <img>, which the canvas follows) and the
    part of the screen the canvas shows (the image may be zoomed past it)."""
    image = page.eval_on_selector(
        ".lsf-image img", "i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().toJSON()]"
    )
    stage = page.eval_on_selector(".konvajs-content", "s => s.getBoundingClientRect().toJSON()")
    assert image[:2] == [WIDTH, HEIGHT], f"Label Studio shows the photo as {image[:2]}, not as displayed"
    rect = image[2]
    assert rect["height"] / HEIGHT == pytest.approx(rect["width"] / WIDTH, rel=0.01)
    visible = (stage["left"], stage["top"], stage["right"], stage["bottom"])
    return Placement(rect["left"], rect["top"], rect["width"] / WIDTH), visible


def test_predictions_are_drawn_on_their_objects(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tmp_path: Path
) -> None:
    chromium_path()  # skip before any work when the browser is missing
    displayed = _photo_and_predictions(tmp_path / "photos")
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = run_prelabel(
        "project",
        "create",
        "--title",
        "seen in a browser",
        "--labels",
        "person,car,dog",
        "--tools",
        "box,mask,polygon",
        "--keypoints",
        "nose,tail",
        "--choices",
        "day,night",
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    project_id = int(done.stdout.split()[-1])
    done = run_prelabel(
        "run",
        "--input-dir",
        "photos",
        "--project-id",
        str(project_id),
        "--model",
        "raw-files",
        "--import-new",
        "--show-predictions",
        "--model-version",
        MODEL_VERSION,
        "--output-dir",
        "out",
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (task,) = ls_client.iter_tasks(project_id)
    (prediction,) = ls_client.task_predictions(task.id)
    posted = sorted({r["type"] for r in prediction["result"]})
    assert posted == ["brushlabels", "choices", "keypointlabels", "polygonlabels", "rectanglelabels"]

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        log_in(page, label_studio)
        page.goto(f"{label_studio.url}/projects/{project_id}/data?task={task.id}")
        screenshot = _settled_screenshot(page)
        Image.fromarray(screenshot).save(tmp_path / "labeling-page.png")
        kept = docs_image("label-studio-predictions.png")
        if kept is not None:
            Image.fromarray(screenshot).save(kept)
        placement, visible = _placement(page)
        # The predicted choice is selected, the other not (Label Studio's checkboxes, by their names).
        assert page.get_by_role("checkbox", name="night").is_checked()
        assert not page.get_by_role("checkbox", name="day").is_checked()

    change = change_map(screenshot, displayed, placement, visible)
    screen_of = tmp_path / "labeling-page.png"  # named in every failure: look at it

    # The photo is shown as displayed, and nothing is drawn more than 4 pixels from any box.
    share, looked = quiet_share(change, placement, (WIDTH, HEIGHT), BOXES, 4, DRAWN / 2)
    assert looked > 50_000 and share < 0.002, (share, looked, screen_of)

    # Every box (the mask's and the polygon's detections have theirs too) is outlined on its object.
    for x1, y1, x2, y2 in BOXES:
        for edge in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x1, y2), (x2, y2)), ((x1, y1), (x1, y2))):
            assert edge_coverage(change, placement, *edge, DRAWN) > 0.9, (edge, screen_of)

    # The brush covers its car: drawn over well beyond the same box's tint on the box-only car.
    inner = (CAR_MASKED[0] + 4, CAR_MASKED[1] + 4, CAR_MASKED[2] - 4, CAR_MASKED[3] - 4)
    boxed = (CAR_BOXED[0] + 4, CAR_BOXED[1] + 4, CAR_BOXED[2] - 4, CAR_BOXED[3] - 4)
    assert share_above(change, placement, boxed, DRAWN) < 0.01, screen_of
    assert share_above(change, placement, inner, DRAWN) > 0.98, screen_of

    # The polygon outlines the triangle's slanted sides (its base lies on the box's edge).
    for side in ((DOG[0], DOG[2]), (DOG[1], DOG[2])):
        assert edge_coverage(change, placement, *side, DRAWN) > 0.9, (side, screen_of)

    # Each keypoint is a dot centred on its mark.
    for name, point in MARKS.items():
        found = dot_centre(change, placement, point, 2 * DRAWN)
        assert found is not None and found[1] >= 20, (name, found, screen_of)
        assert found[0] == pytest.approx(point, abs=2), (name, found, screen_of)
