"""SAM 2's video tracker (or SAM 3's) through transformers, fed one frame at a time: objects are
seeded by boxes, their masks propagated frame to frame, and each frame's boxes read from them.

Checkpoints: ``sam2_video`` (``Sam2VideoModel``, e.g. facebook/sam2.1-hiera-tiny, open) or SAM
3's tracker (``Sam3TrackerVideoModel``: ``sam3_tracker_video``, or facebook/sam3 whose detector
weights it leaves out). Both keep the same session: frames are added as they are decoded and run
in streaming mode (``forward(frame=...)``), so nothing needs the video's length. The processors
need torchvision, so frames are resized and normalised on the device (``normalise_pixels``, the
checkpoint's mean and std) and box prompts scaled to the model's input square by hand, as the
processor scales them (corners labelled 2 and 3).

``seed`` starts a new window: the session forgets every object and its memories, then takes
the given boxes as each object's conditioning frame. After each frame ``drop_old`` forgets
decoded frames and memories the model reads no more, so memory stays flat with video length.
Boxes come from the masks (upsampled to the frame, above ``mask_threshold``), covering the
mask's pixels (x2, y2 exclusive); an object the model calls absent has an empty mask and no box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from prelabel.core.errors import SettingsError
from prelabel.predict.models.hub import read_locally
from prelabel.predict.models.pixels import SAM_MEAN, SAM_STD, normalise_pixels
from prelabel.predict.models.runtime import host_to_device, load_pretrained, require_torch

__all__ = ["BoxTracker", "drop_old", "mask_boxes"]

_KINDS = ("sam2_video", "sam3_tracker_video", "sam3_video")


def mask_boxes(masks: Any) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Which of the boolean masks (n, H, W) have a pixel, and each one's xyxy box in pixels
    (x2, y2 exclusive; zeros for an empty mask): (n,), (n, 4)."""
    torch = require_torch("box tracking")
    height, width = masks.shape[-2:]
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    present = rows.any(dim=1).cpu().numpy()
    y1 = rows.float().argmax(dim=1)
    y2 = height - rows.flip(1).float().argmax(dim=1)
    x1 = cols.float().argmax(dim=1)
    x2 = width - cols.flip(1).float().argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], 1).cpu().numpy().astype(np.float64)
    return present.astype(bool), np.where(present[:, None], boxes, 0.0)


def drop_old(session: Any, frame: int, window: int) -> None:
    """Forget the decoded frames before ``frame`` and the memories of frames ``window`` or more
    before it (a propagated frame's memory is read ``num_maskmem`` frames on, its object pointer
    ``max_object_pointers_in_encoder`` frames on: the window is the larger, plus one)."""
    for old in [k for k in session.processed_frames if k < frame]:
        del session.processed_frames[old]
    for outputs in session.output_dict_per_obj.values():
        for old in [k for k in outputs["non_cond_frame_outputs"] if k <= frame - window]:
            del outputs["non_cond_frame_outputs"][old]


class BoxTracker:
    """One tracker checkpoint, loaded once; a session per video (``start``)."""

    def __init__(self, checkpoint: str, revision: str | None, mask_threshold: float, device: str) -> None:
        self.checkpoint, self.revision = checkpoint, revision
        self.mask_threshold, self.device = mask_threshold, device
        require_torch("box tracking")
        from transformers import AutoConfig

        kind = load_pretrained(AutoConfig, checkpoint, revision).model_type
        if kind not in _KINDS:
            raise SettingsError(
                f"tracker {checkpoint!r} is a {kind!r} checkpoint, not a SAM 2 or SAM 3 video tracker "
                "(e.g. facebook/sam2.1-hiera-tiny or facebook/sam3)"
            )
        if kind == "sam2_video":
            from transformers import Sam2VideoModel as Model
            from transformers.models.sam2_video.modeling_sam2_video import (
                Sam2VideoInferenceSession as Session,
            )
        else:
            from transformers import Sam3TrackerVideoModel as Model  # type: ignore[assignment]
            from transformers.models.sam3_tracker_video.modeling_sam3_tracker_video import (  # type: ignore[assignment]
                Sam3TrackerVideoInferenceSession as Session,
            )
        self.session_class = Session
        self.model = load_pretrained(Model, checkpoint, revision).to(device).eval()
        config = self.model.config
        self.side = int(config.image_size if isinstance(config.image_size, int) else config.image_size[0])
        self.window = max(int(config.num_maskmem), int(config.max_object_pointers_in_encoder)) + 1
        self.mean, self.std = self._normalisation(kind)

    def _normalisation(self, kind: str) -> tuple[Sequence[float], Sequence[float]]:
        """The checkpoint's image mean and std (its preprocessor config), else its family's."""
        from transformers.image_processing_base import ImageProcessingMixin

        default = (SAM_MEAN, SAM_STD) if kind == "sam2_video" else ((0.5,) * 3, (0.5,) * 3)
        try:
            config, _ = ImageProcessingMixin.get_image_processor_dict(
                self.checkpoint,
                revision=self.revision,
                local_files_only=read_locally(self.checkpoint, self.revision),
            )
        except OSError:
            return default
        return config.get("image_mean", default[0]), config.get("image_std", default[1])

    def start(self, width: int, height: int) -> Any:
        """A session for a video of ``width`` x ``height`` pixels."""
        torch = require_torch("box tracking")
        return self.session_class(
            video_height=height,
            video_width=width,
            inference_device=self.device,
            inference_state_device=self.device,
            video_storage_device=self.device,
            dtype=torch.float32,
        )

    def pixels(self, rgb: npt.NDArray[np.uint8]) -> Any:
        """Decoded frames (n, H, W, 3) uint8 as the model's normalised input squares (n, 3, S, S)."""
        images = host_to_device(rgb, self.device).permute(0, 3, 1, 2)
        return normalise_pixels(images, (self.side, self.side), self.mean, self.std)

    @staticmethod
    def add_frame(session: Any, frame: int, pixels: Any) -> None:
        """Add ``frame``'s input square (3, S, S) to the session."""
        session.add_new_frame(pixels.float(), frame)

    def seed(self, session: Any, frame: int, ids: Sequence[int], xyxy: npt.ArrayLike) -> None:
        """Start a window on ``frame``: forget every object, then seed ``ids`` with these boxes
        (xyxy pixels), which condition the next ``step`` on that frame."""
        torch = require_torch("box tracking")
        session.reset_tracking_data()
        boxes = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        scale = np.array([self.side / session.video_width, self.side / session.video_height] * 2)
        labels = torch.tensor([[[2, 3]]], dtype=torch.int32)
        for obj, box in zip(ids, boxes, strict=True):
            corners = torch.tensor(box * scale, dtype=torch.float32).reshape(1, 1, 2, 2)
            prompt = {"point_coords": corners, "point_labels": labels}
            session.add_point_inputs(session.obj_id_to_idx(int(obj)), frame, prompt)
        session.obj_with_new_inputs = [int(i) for i in ids]

    def step(self, session: Any, frame: int) -> tuple[list[int], npt.NDArray[np.float64]]:
        """Run the tracker on ``frame`` (added): the ids of the objects it sees there and
        their xyxy boxes (pixels)."""
        torch = require_torch("box tracking")
        if session.get_obj_num() == 0:
            return [], np.zeros((0, 4))
        output = self.model(inference_session=session, frame=session.processed_frames[frame], frame_idx=frame)
        masks = torch.nn.functional.interpolate(
            output.pred_masks.float(),
            size=(session.video_height, session.video_width),
            mode="bilinear",
            align_corners=False,
        )
        present, boxes = mask_boxes(masks[:, 0] > self.mask_threshold)
        ids = [int(i) for i in output.object_ids]
        return [ids[n] for n in np.flatnonzero(present)], boxes[present]
