"""Video tracks seen in a real browser: Label Studio's labeling page, in Debian's chromium, draws the
boxes `prelabel run` posted on a video of moving shapes where the shapes are, at the first, a
middle and the last frame, and nothing where a track is off (before it starts, after it ends).

The tracks are the shapes' true boxes, put in the run's cache under the video's hash and the
model's signature, so `prelabel run` posts them through the user path (import as a video task,
keyframes thinned, posted once) without the random model's boxes. Drawings are read from
screenshot pixels against the decoded frame (tests/support/screen.py). With
``PRELABEL_SCREENSHOTS=<folder>`` the three screenshots are saved there for the video guide.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image

from prelabel.labelstudio.client import LabelStudioClient
from prelabel.labelstudio.server import LocalLabelStudio
from prelabel.predict.models import create_model
from prelabel.store.cache import open_cache
from prelabel.video.cache import put_tracks
from prelabel.video.decode import iter_chunks
from prelabel.video.keyframes import expand
from prelabel.video.probe import probe_video
from prelabel.video.regions import keyframes_of
from prelabel.video.timeline import frames_count, shown_frames
from prelabel.video.tracks import Track, VideoTracks
from tests.conftest import run_prelabel
from tests.support.browser import chromium, chromium_path, log_in
from tests.support.docs_images import docs_image
from tests.support.screen import Placement, change_map, edge_coverage, quiet_share
from tests.support.videos import Shape, write_video

if TYPE_CHECKING:
    from playwright.sync_api import Page

WIDTH, HEIGHT, FPS, FRAMES = 320, 192, 12, 24
# Outlines lie on the shapes' edges, so each shape's colour and the near-white background must
# span a range the outline's colour (Label Studio's, per label) leaves in some channel: a purple
# outline on a blue shape would not count as drawn.
CAR = Shape((220, 40, 40), (60, 40), (10, 20), (8, 2))  # on screen from the first frame to the last
PERSON = Shape((240, 220, 0), (40, 60), (250, 110), (-6, -1), enter=4, leave=18)  # comes, then goes
LABELS = {CAR: "car", PERSON: "person"}
DRAWN = 40  # a screen pixel this far (0-255) outside the frame's nearby colours is drawn over
SEEN = ("first", 1), ("middle", FRAMES // 2), ("last", FRAMES)  # Label Studio's frames, 1-based


def _true_tracks() -> VideoTracks:
    """Each shape's box on every frame it is on: what a perfect tracker finds."""
    tracks = []
    for number, shape in enumerate((CAR, PERSON), start=1):
        frames = [n for n in range(FRAMES) if shape.box(n) is not None]
        boxes = [shape.box(n) for n in frames]
        tracks.append(
            Track(
                number,
                np.array(frames),
                np.array(boxes, dtype=np.float64),
                np.full(len(frames), 0.9),
                (LABELS[shape],) * len(frames),
            )
        )
    return VideoTracks(FRAMES, WIDTH, HEIGHT, tuple(tracks))


def _settled_screenshot(page: Page, frame: int, timeout: float = 20.0) -> npt.NDArray[np.uint8]:
    """The labeling page at Label Studio's ``frame`` once the player is there and two screenshots
    in a row are the same (the canvas draws the seeked picture on a later animation frame)."""
    page.evaluate("n => window.Htx.annotationStore.selected.names.get('video').setFrame(n)", frame)
    page.wait_for_function(
        "n => window.Htx.annotationStore.selected.names.get('video').ref.current?.currentFrame === n",
        arg=frame,
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
    """Where the player draws the video: centred in its canvas at the player's scale (its ratio
    times its zoom, moved by its pan), and the part of the screen the canvas shows."""
    player = page.evaluate(
        "() => { const p = window.Htx.annotationStore.selected.names.get('video').ref.current;"
        " return [p.videoDimensions, p.zoom, p.pan]; }"
    )
    dimensions, zoom, pan = player
    assert (dimensions["width"], dimensions["height"]) == (WIDTH, HEIGHT)
    canvas = page.eval_on_selector(".konvajs-content", "c => c.getBoundingClientRect().toJSON()")
    scale = dimensions["ratio"] * zoom
    left = canvas["left"] + (canvas["width"] - WIDTH * scale) / 2 + pan["x"]
    top = canvas["top"] + (canvas["height"] - HEIGHT * scale) / 2 + pan["y"]
    return Placement(left, top, scale), (canvas["left"], canvas["top"], canvas["right"], canvas["bottom"])


def test_tracks_are_drawn_on_their_shapes_at_the_first_a_middle_and_the_last_frame(
    label_studio: LocalLabelStudio, ls_client: LabelStudioClient, tiny_sam3_video: Path, tmp_path: Path
) -> None:
    chromium_path()  # skip before any work when the browser is missing
    (tmp_path / "videos").mkdir()
    path = write_video(
        tmp_path / "videos" / "shapes.webm",
        frames=FRAMES,
        size=(WIDTH, HEIGHT),
        fps=FPS,
        shapes=(CAR, PERSON),
    )
    video = probe_video(path)
    # the run's model as the run makes it (its classes from the project's labels): its cache entry
    model = create_model("sam3-video", checkpoint=str(tiny_sam3_video), classes=["car", "person"])
    put_tracks(open_cache(tmp_path / "cache"), video.sha256, model.signature(), _true_tracks())
    env = {
        "PRELABEL_LS_URL": label_studio.url,
        "HF_HUB_OFFLINE": "1",
        "PRELABEL_LS_API_KEY": label_studio.legacy_token.get_secret_value(),
    }
    done = run_prelabel(
        "project",
        "create",
        "--title",
        "video in a browser",
        "--labels",
        "car,person",
        "--video",
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    project_id = int(done.stdout.split()[-1])
    done = run_prelabel(
        "run",
        "--input-dir",
        "videos",
        "--project-id",
        str(project_id),
        "--model",
        "sam3-video",
        "--import-new",
        "--show-predictions",
        "--cache-dir",
        "cache",
        "--output-dir",
        "out",
        "--model-version",
        "shapes",
        f"--model-option=checkpoint={tiny_sam3_video}",
        "--model-option=device=cpu",
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| predictions from the cache | 1 |" in done.stdout  # the true tracks, not the model's
    (task,) = ls_client.iter_tasks(project_id, full=True)
    (prediction,) = task.predictions
    count = frames_count(video.duration, FPS)
    drawn = {}  # Label Studio frame -> the boxes the frontend should draw there (pixels)
    for result in prediction["result"]:
        frames, boxes = expand(keyframes_of(result).keyframes, count)
        for frame, (x, y, w, h, _) in zip(frames.tolist(), boxes.tolist(), strict=True):
            drawn.setdefault(frame, []).append(
                (x * WIDTH / 100, y * HEIGHT / 100, (x + w) * WIDTH / 100, (y + h) * HEIGHT / 100)
            )
    pictures = np.concatenate([c.rgb for c in iter_chunks(path, 100)])
    shown = shown_frames(video.times, FPS, count)
    assert [len(drawn.get(n, [])) for _, n in SEEN] == [
        1,
        2,
        1,
    ]  # the person comes after the first, goes before the last

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        log_in(page, label_studio)
        page.goto(f"{label_studio.url}/projects/{project_id}/data?task={task.id}")
        page.wait_for_function(
            "() => (window.Htx?.annotationStore?.selected?.regions?.length ?? 0) > 0", timeout=60_000
        )
        screens = {}
        for name, frame in SEEN:
            screens[frame] = _settled_screenshot(page, frame)
            Image.fromarray(screens[frame]).save(tmp_path / f"video-{name}.png")
            if (for_docs := docs_image(f"video-{name}.png")) is not None:
                Image.fromarray(screens[frame]).save(for_docs)
        placement, visible = _placement(page)

    for name, frame in SEEN:
        screen_of = tmp_path / f"video-{name}.png"  # named in every failure: look at it
        change = change_map(screens[frame], pictures[shown[frame - 1]], placement, visible)
        boxes = drawn[frame]
        # each box is outlined where its shape is (the shapes' true boxes, thinned within IoU 0.9)
        for x1, y1, x2, y2 in boxes:
            for edge in (
                ((x1, y1), (x2, y1)),
                ((x2, y1), (x2, y2)),
                ((x1, y2), (x2, y2)),
                ((x1, y1), (x1, y2)),
            ):
                assert edge_coverage(change, placement, *edge, DRAWN) > 0.9, (name, edge, screen_of)
        # the frame is shown as decoded, and nothing is drawn more than 4 pixels from its boxes
        share, looked = quiet_share(change, placement, (WIDTH, HEIGHT), boxes, 4, DRAWN / 2)
        assert looked > 20_000 and share < 0.002, (name, share, looked, screen_of)
