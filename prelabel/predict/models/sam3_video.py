"""SAM 3's video model through transformers: each label a concept, every instance found and tracked.

Each label's phrases (``prelabel.predict.models.concepts``; negatives are an image-model feature and
are refused here) are text prompts of one ``Sam3VideoModel`` session; an object keeps the
label of the phrase that found it and its identity through the video. Frames are decoded
in chunks of ``chunk_frames`` (``prelabel.video.decode``), resized and normalised on the
device as the SAM 3 image adapter does (no torchvision), and added to the session one by
one; the session reports the video's frame count from the probe, so the model runs exactly
as ``propagate_in_video_iterator`` runs over a whole video (its hot-start heuristics
included), and its output is held back ``hotstart_delay`` frames as that iterator holds it.

Memory stays flat with video length: after each frame the session forgets what the model
never reads again (tests/unit/video/test_video_sam3.py checks the tracks equal transformers' own
propagation over the whole video): decoded frames before the current one, memories of
frames older than the memory window (``num_maskmem``, ``max_object_pointers_in_encoder``),
and of older conditioning frames all but the object pointer the model still attends to.

Boxes come from the masks (upsampled to the frame, > 0) as the processor's
``postprocess_outputs`` computes them, covering the mask's pixels (x2, y2 exclusive);
suppressed objects, objects removed during hot-start and empty masks are left out.
Options override the checkpoint's config: ``threshold`` (detection score),
``new_object_threshold``, ``max_objects`` and ``hotstart_delay`` (its unmatched and
duplicate counts are capped to it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from prelabel.core.errors import SettingsError
from prelabel.predict.models.base import class_list
from prelabel.predict.models.box_tracker import drop_old, mask_boxes
from prelabel.predict.models.checkpoints import LocalCheckpoint, locate_checkpoint
from prelabel.predict.models.concepts import build_concepts, load_prompts
from prelabel.predict.models.pixels import normalise_pixels
from prelabel.predict.models.registry import register
from prelabel.predict.models.runtime import (
    autocast,
    host_to_device,
    load_pretrained,
    require_torch,
    select_device,
)
from prelabel.predict.models.sam3 import FETCH, TEXT_LENGTH
from prelabel.predict.models.video import VideoModel
from prelabel.records import ModelSignature
from prelabel.video.decode import iter_chunks
from prelabel.video.probe import VideoInfo
from prelabel.video.tracks import TrackBuilder, VideoTracks

__all__ = ["Sam3Video"]

_PROCESSOR_DEFAULTS = {
    "size": {"height": 1008, "width": 1008},
    "image_mean": [0.5] * 3,
    "image_std": [0.5] * 3,
}
_KEEP = ("object_pointer", "object_score_logits")  # what an old conditioning frame is still read for


@register("sam3-video")
class Sam3Video(VideoModel):
    """SAM 3 video: all instances of each label's phrases, tracked through the video."""

    prompt_from_project = True
    needs = (
        "weights: facebook/sam3 (gated: accept its licence, then hf download; 3.4 GB) or checkpoint=DIR; "
        "a CUDA GPU (CPU works, slowly)"
    )

    def __init__(
        self,
        classes: Sequence[str] | str | None = None,
        prompts: str | Mapping[str, Any] | None = None,
        checkpoint: str = "facebook/sam3",
        revision: str | None = None,
        threshold: float | None = None,
        new_object_threshold: float | None = None,
        max_objects: int | None = None,
        hotstart_delay: int | None = None,
        chunk_frames: int = 32,
        dtype: str = "bfloat16",
        device: str | None = None,
    ) -> None:
        if dtype not in ("bfloat16", "float16", "float32"):
            raise SettingsError(f"sam3-video dtype {dtype!r}: use bfloat16, float16 or float32")
        self.concepts = build_concepts(class_list(classes), load_prompts(prompts) if prompts else [])
        negatives = [n for c in self.concepts for n in c.negatives]
        if negatives:
            raise SettingsError(
                f"sam3-video takes no negative phrases ({negatives[0]!r}): use sam3 on images"
            )
        self.phrases = list(dict.fromkeys(p for c in self.concepts for p in c.phrases))
        self._label_of = {p: c.label for c in self.concepts for p in c.phrases}
        self.threshold, self.new_object_threshold = threshold, new_object_threshold
        self.max_objects, self.hotstart_delay = max_objects, hotstart_delay
        self.chunk_frames, self.dtype, self.device = max(1, chunk_frames), dtype, device
        self.checkpoint: LocalCheckpoint = locate_checkpoint("sam3-video", checkpoint, revision, FETCH)
        self._models: tuple[Any, Any, dict[str, Any]] | None = None

    def signature(self) -> ModelSignature:
        params = {
            "concepts": [c.as_json() for c in self.concepts],
            "threshold": self.threshold,
            "new_object_threshold": self.new_object_threshold,
            "max_objects": self.max_objects,
            "hotstart_delay": self.hotstart_delay,
        }
        return ModelSignature("sam3-video", self.checkpoint.revision, params)

    def _load(self) -> tuple[Any, Any, dict[str, Any]]:
        if self._models is None:
            require_torch("sam3-video")
            from transformers import AutoTokenizer, Sam3VideoModel
            from transformers.image_processing_base import ImageProcessingMixin

            self.device = select_device(self.device)
            folder = str(self.checkpoint.path)
            model = load_pretrained(Sam3VideoModel, folder, None)
            if not hasattr(model, "tracker_model"):
                raise SettingsError(f"checkpoint {self.checkpoint.name!r} is not a SAM 3 video model")
            for option, attribute in (
                (self.threshold, "score_threshold_detection"),
                (self.new_object_threshold, "new_det_thresh"),
                (self.max_objects, "max_num_objects"),
                (self.hotstart_delay, "hotstart_delay"),
            ):
                if option is not None:
                    setattr(model, attribute, option)
            model.hotstart_unmatch_thresh = min(model.hotstart_unmatch_thresh, max(model.hotstart_delay, 1))
            model.hotstart_dup_thresh = min(model.hotstart_dup_thresh, max(model.hotstart_delay, 1))
            tokenizer = load_pretrained(AutoTokenizer, folder, None)
            try:
                config, _ = ImageProcessingMixin.get_image_processor_dict(folder)
            except OSError:
                config = {}
            processor = {k: config.get(k, default) for k, default in _PROCESSOR_DEFAULTS.items()}
            self._models = (model.to(self.device).eval(), tokenizer, processor)
        return self._models

    def track(self, video: VideoInfo) -> VideoTracks:
        if not self.phrases:
            raise SettingsError(
                "sam3-video needs concepts to look for: pass classes=car,person or prompts=FILE, or run "
                "it on a project whose labeling config lists labels"
            )
        model, _, _ = self._load()
        session = self.session(video)
        builder = TrackBuilder()
        for frame, output in self.outputs(model, session, video):
            ids, scores, boxes = self.boxes(model, session, output, video.height, video.width)
            labels = [self._label_of[session.prompts[session.obj_id_to_prompt_id[i]]] for i in ids]
            builder.add(frame, ids, boxes, scores, labels)
        return builder.build(video.frames, video.width, video.height)

    def session(self, video: VideoInfo) -> Any:
        """A session for ``video`` with every phrase prompted, counting the video's frames."""
        torch = require_torch("sam3-video")
        from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

        _, tokenizer, _ = self._load()

        class Streamed(Sam3VideoInferenceSession):
            @property
            def num_frames(self) -> int:
                return video.frames

        device = self.device or "cpu"
        session = Streamed(
            video_height=video.height,
            video_width=video.width,
            inference_device=device,
            inference_state_device=device,
            video_storage_device=device,
            dtype=torch.float32,
        )
        for phrase in self.phrases:
            prompt = session.add_prompt(phrase)
            encoded = tokenizer(phrase, return_tensors="pt", padding="max_length", max_length=TEXT_LENGTH)
            session.prompt_input_ids[prompt] = encoded.input_ids.to(device)
            session.prompt_attention_masks[prompt] = encoded.attention_mask.to(device)
        return session

    def outputs(self, model: Any, session: Any, video: VideoInfo) -> Iterator[tuple[int, Any]]:
        """(frame index, model output) for every frame, held back ``hotstart_delay`` frames as
        ``propagate_in_video_iterator`` holds them (hot-start removals are known by then)."""
        torch = require_torch("sam3-video")
        _, _, processor = self._load()
        device = self.device or "cpu"
        side = (int(processor["size"]["height"]), int(processor["size"]["width"]))
        delay = int(model.hotstart_delay)
        held: deque[Any] = deque()
        for chunk in iter_chunks(video.path, self.chunk_frames):
            with torch.inference_mode(), autocast(device, self.dtype):
                pixels = normalise_pixels(
                    host_to_device(chunk.rgb, device).permute(0, 3, 1, 2),
                    side,
                    processor["image_mean"],
                    processor["image_std"],
                )
                for offset in range(len(chunk)):
                    index = chunk.start + offset
                    session.add_new_frame(pixels[offset].float(), index)
                    output = model(inference_session=session, frame_idx=index)
                    forget(model, session, index)
                    if delay <= 0:
                        yield index, output
                        continue
                    session.hotstart_removed_obj_ids.update(output.removed_obj_ids)
                    held.append(output)
                    if len(held) >= delay:
                        first = held.popleft()
                        yield first.frame_idx, first
        while held:
            first = held.popleft()
            yield first.frame_idx, first

    @staticmethod
    def boxes(
        model: Any, session: Any, output: Any, height: int, width: int
    ) -> tuple[list[int], list[float], Any]:
        """Object ids, scores and xyxy pixel boxes of one frame's output (see the module docstring)."""
        torch = require_torch("sam3-video")
        hidden = set(output.suppressed_obj_ids or ()) | set(session.hotstart_removed_obj_ids)
        ids = [i for i in sorted(output.obj_id_to_mask) if i not in hidden]
        if not ids:
            return [], [], np.zeros((0, 4))
        low = torch.cat([output.obj_id_to_mask[i] for i in ids]).float()
        masks = (
            torch.nn.functional.interpolate(
                low[:, None], size=(height, width), mode="bilinear", align_corners=False
            )[:, 0]
            > 0
        )
        present, boxes = mask_boxes(masks)
        kept = [n for n in range(len(ids)) if present[n]]
        scores = [float(output.obj_id_to_score[ids[n]]) for n in kept]
        return [ids[n] for n in kept], scores, boxes[kept]


def forget(model: Any, session: Any, frame: int) -> None:
    """Drop from ``session`` what the model reads no more once it has processed ``frame``."""
    tracker = model.tracker_model.config
    window = max(int(tracker.num_maskmem), int(tracker.max_object_pointers_in_encoder)) + 1
    drop_old(session, frame, window)
    for per_frame in (session.obj_id_to_tracker_score_frame_wise, session.suppressed_obj_ids):
        for old in [k for k in per_frame if k < frame]:  # read at the current frame only (and
            del per_frame[old]  # the first copied whole on every frame: kept, each frame costs more)
    for outputs in session.output_dict_per_obj.values():
        conditioning = sorted(outputs["cond_frame_outputs"])
        recent = set(conditioning[-int(tracker.max_cond_frame_num) :])
        for old in conditioning:
            if old <= frame - window and old not in recent:
                entry = outputs["cond_frame_outputs"][old]
                outputs["cond_frame_outputs"][old] = {k: v for k, v in entry.items() if k in _KEEP}
