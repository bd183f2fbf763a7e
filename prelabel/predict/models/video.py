"""The interface of models that track objects through videos (``task_types`` ``video-tracking``).

They share the image models' registry, options and signature (the cache key's model half),
but work on a whole video at a time: ``track`` streams its frames in chunks of
``chunk_frames`` and returns every object's track (``prelabel.video.tracks``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from prelabel.core.errors import PrelabelError, SettingsError
from prelabel.predict.models.base import ImageItem, ModelAdapter
from prelabel.predict.models.chain import CHAIN
from prelabel.predict.models.registry import adapter_class
from prelabel.records import Detections
from prelabel.video.probe import VideoInfo
from prelabel.video.tracks import VideoTracks

__all__ = ["VIDEO_TRACKING", "VideoModel", "is_video_model", "tracks_videos"]

VIDEO_TRACKING = "video-tracking"


class VideoModel(ModelAdapter):
    """A model that finds objects in a video and follows each one, with an identity."""

    task_types = (VIDEO_TRACKING,)
    decodes_pixels = False

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        raise SettingsError(
            f"model {self.name!r} tracks objects through videos: run it on a video project "
            "(prelabel project create --video) with a folder of videos"
        )

    def image_model(self) -> str | None:
        """The registered image model it runs on frames, if any: that model's limits (the DINO-X
        API's concurrency) hold while a video is tracked."""
        return None

    @abstractmethod
    def track(self, video: VideoInfo) -> VideoTracks:
        """Every object's track through ``video`` (boxes in pixels of its frames)."""


def is_video_model(cls: type[ModelAdapter]) -> bool:
    return VIDEO_TRACKING in cls.task_types


def tracks_videos(name: str) -> bool:
    """Whether ``--model name`` tracks objects through videos (a video project's run) rather
    than predicting on images; an unknown name is ``SettingsError``."""
    return CHAIN not in name and is_video_model(adapter_class(name))
