"""``detect-track``: any registered image detector on keyframes, SAM 2's video tracker (or SAM 3's)
carrying each detected object between them, identities kept by box IoU.

For users of the models they have: ``detector`` names any registered model that finds boxes on
images (``grounded-sam2``, ``dinox``, ``detr``, a chain such as ``detr+vitpose``), with its
options given as ``detector.<option>`` (``detector.box_threshold=0.3``). It runs on every
``every``-th frame, the first included. On such a keyframe the tracker first carries the live
tracks there, the detector's boxes are matched to those propagated boxes
(``prelabel.video.identities``: a detection at ``match_iou`` or more continues its track, another
starts one, a track missed ``patience`` keyframes in a row ends), and the tracker starts a new
window seeded with the detections' boxes and the kept tracks' propagated ones
(``prelabel.predict.models.box_tracker``). Reseeding every window keeps the tracker on what the detector
sees, and keeps the session, hence memory, the size of one window whatever the video's length.

On a keyframe a track's box is the detector's (a kept, undetected track's the tracker's); between
keyframes the tracker's. A frame's score and label are those of the detection that last seeded
the track. Frames are decoded ``chunk_frames`` at a time; the detector sees each keyframe's
decoded pixels (no re-encoding), and its output is made sane as an image's is; a detector that
fails on a keyframe fails its video (an error row), not the run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from prelabel.core.errors import DetectionError, PrelabelError, SettingsError
from prelabel.core.images import ImageInfo, LoadedImage
from prelabel.predict.models.base import ImageItem, ModelAdapter, class_list
from prelabel.predict.models.box_tracker import BoxTracker, drop_old
from prelabel.predict.models.registry import create_model, model_parts, register
from prelabel.predict.models.runtime import autocast, require_torch, select_device
from prelabel.predict.models.video import VideoModel, tracks_videos
from prelabel.predict.output import sane_detections
from prelabel.records import Detections, ModelSignature
from prelabel.video.decode import iter_chunks
from prelabel.video.identities import Identities
from prelabel.video.probe import VideoInfo
from prelabel.video.tracks import TrackBuilder, VideoTracks

__all__ = ["DetectTrack", "frame_item"]


def frame_item(video: VideoInfo, frame: int, rgb: np.ndarray[Any, Any]) -> ImageItem:
    """A decoded frame (H, W, 3) uint8 as an image for a detector, its pixels already loaded;
    named ``<video>#<frame>`` (0-based), hashed by its pixels."""
    name = f"{Path(video.path).name}#{frame}"
    height, width = rgb.shape[:2]
    info = ImageInfo(
        name, hashlib.sha256(rgb.tobytes()).hexdigest(), width, height, 1, width, height, "RAW", "RGB"
    )
    return ImageItem(name, b"", info, _loaded=LoadedImage(info, Image.fromarray(rgb)))


@register("detect-track")
class DetectTrack(VideoModel):
    """A detector on keyframes, SAM 2 (or SAM 3's tracker) between them."""

    prompt_from_project = True
    keyed_options = {"detector": "detector_options"}  # noqa: RUF012  (a ClassVar in the base)
    needs = (
        "the detector's needs (see its entry) and tracker weights: facebook/sam2.1-hiera-tiny (open, "
        "fetched on first use) or facebook/sam3 (gated); a CUDA GPU (CPU works, slowly)"
    )

    def __init__(
        self,
        classes: Sequence[str] | str | None = None,
        detector: str = "grounded-sam2",
        detector_options: Mapping[str, Any] | None = None,
        tracker: str = "facebook/sam2.1-hiera-tiny",
        tracker_revision: str | None = None,
        every: int = 10,
        match_iou: float = 0.5,
        patience: int = 1,
        mask_threshold: float = 0.0,
        chunk_frames: int = 32,
        dtype: str = "bfloat16",
        device: str | None = None,
    ) -> None:
        if dtype not in ("bfloat16", "float16", "float32"):
            raise SettingsError(f"detect-track dtype {dtype!r}: use bfloat16, float16 or float32")
        if every < 1 or patience < 0 or not 0 < match_iou <= 1:
            raise SettingsError(
                f"detect-track: every must be >= 1 (got {every}), patience >= 0 (got {patience}) and "
                f"match_iou in (0, 1] (got {match_iou})"
            )
        if tracks_videos(detector):
            raise SettingsError(f"detect-track: the detector {detector!r} tracks videos itself; use it alone")
        parts = model_parts(detector)
        if not all(cls.decodes_pixels for _, cls in parts):
            raise SettingsError(
                f"detect-track: the detector {detector!r} reads no pixels; name a model that does"
            )
        options = dict(detector_options or {})
        self.classes = class_list(classes)
        for prefix, cls in parts:  # an open-vocabulary detector looks for the run's classes
            if cls.prompt_from_project and self.classes and not options.get(f"{prefix}classes"):
                options[f"{prefix}classes"] = self.classes
        self.detector_name = detector
        self.detector: ModelAdapter = create_model(detector, **options)
        self.tracker_name, self.tracker_revision = tracker, tracker_revision
        self.every, self.match_iou, self.patience = every, match_iou, patience
        self.mask_threshold, self.chunk_frames = mask_threshold, max(1, chunk_frames)
        self.dtype, self.device = dtype, device
        self._tracker: BoxTracker | None = None

    def signature(self) -> ModelSignature:
        found = self.detector.signature()
        detector = {"model": found.model, "revision": found.revision, "params": dict(found.params)}
        params = {
            "detector": detector,
            "every": self.every,
            "match_iou": self.match_iou,
            "patience": self.patience,
            "mask_threshold": self.mask_threshold,
        }
        revision = f"{self.tracker_name}@{self.tracker_revision or 'main'}"
        return ModelSignature("detect-track", revision, params)

    def image_model(self) -> str:
        return self.detector_name

    def _load(self) -> BoxTracker:
        if self._tracker is None:
            require_torch("detect-track")
            self.device = select_device(self.device)
            self._tracker = BoxTracker(
                self.tracker_name, self.tracker_revision, self.mask_threshold, self.device
            )
        return self._tracker

    def track(self, video: VideoInfo) -> VideoTracks:
        torch = require_torch("detect-track")
        tracker = self._load()
        session = tracker.start(video.width, video.height)
        identities = Identities(self.match_iou, self.patience)
        builder = TrackBuilder()
        seeds: dict[int, tuple[float, str]] = {}  # track id -> the score and label that last seeded it
        device = self.device or "cpu"
        for chunk in iter_chunks(video.path, self.chunk_frames):
            with torch.inference_mode(), autocast(device, self.dtype):
                pixels = tracker.pixels(chunk.rgb)
                for offset in range(len(chunk)):
                    frame = chunk.start + offset
                    tracker.add_frame(session, frame, pixels[offset])
                    ids, boxes = tracker.step(session, frame)
                    if frame % self.every == 0:
                        ids, boxes = self._keyframe(
                            tracker, session, identities, seeds, video, frame, chunk.rgb[offset], ids, boxes
                        )
                    builder.add(frame, ids, boxes, [seeds[i][0] for i in ids], [seeds[i][1] for i in ids])
                    drop_old(session, frame, tracker.window)
        return builder.build(video.frames, video.width, video.height)

    def _keyframe(
        self,
        tracker: BoxTracker,
        session: Any,
        identities: Identities,
        seeds: dict[int, tuple[float, str]],
        video: VideoInfo,
        frame: int,
        rgb: np.ndarray[Any, Any],
        ids: list[int],
        boxes: np.ndarray[Any, Any],
    ) -> tuple[list[int], np.ndarray[Any, Any]]:
        """Detect on ``frame``, match the detections to the tracks propagated there (``ids``,
        ``boxes``), reseed the tracker; the frame's ids and boxes (the detector's, then the
        kept tracks' propagated ones)."""
        found = self._detect(video, frame, rgb)
        assigned = identities.assign(ids, boxes, found.xyxy)
        for track, score, label in zip(assigned.detections, found.scores, found.labels, strict=True):
            seeds[track] = (float(score), str(label))
        kept = boxes[assigned.kept_positions].reshape(-1, 4)
        frame_ids = [*assigned.detections, *assigned.kept]
        frame_boxes = np.concatenate([found.xyxy.reshape(-1, 4), kept])
        tracker.seed(session, frame, frame_ids, frame_boxes)
        tracker.step(session, frame)  # conditions each object on its box; the boxes shown are the seeds
        return frame_ids, frame_boxes

    def _detect(self, video: VideoInfo, frame: int, rgb: np.ndarray[Any, Any]) -> Detections:
        """The detector's sane boxes on one decoded frame (pixels); a failure is ``DetectionError``."""
        item = frame_item(video, frame, np.ascontiguousarray(rgb))
        (found,) = self.detector.predict([item])
        if isinstance(found, PrelabelError):
            raise DetectionError(item.uri, f"the detector {self.detector_name!r} failed: {found}")
        return sane_detections(found, item.info)
