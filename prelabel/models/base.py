"""The adapter interface: lazy loading, batch prediction, a signature for the cache key."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from prelabel.errors import PrelabelError
from prelabel.images import DEFAULT_MAX_PIXELS, ImageInfo, LoadedImage, load_image
from prelabel.records import Detections, ModelSignature

__all__ = ["ImageItem", "ModelAdapter"]


@dataclass
class ImageItem:
    """One image on its way through a batch: where it is, its bytes, its info.

    Pixels are decoded on first use and kept, so an adapter that needs none (raw files)
    never pays for them.
    """

    uri: str
    data: bytes
    info: ImageInfo
    max_pixels: int = DEFAULT_MAX_PIXELS
    _loaded: LoadedImage | None = field(default=None, repr=False)

    def load(self) -> LoadedImage:
        """The decoded RGB image with its EXIF orientation applied."""
        if self._loaded is None:
            self._loaded = load_image(self.data, self.uri, max_pixels=self.max_pixels)
        return self._loaded


class ModelAdapter(ABC):
    """A model prelabel can run. Subclasses load their weights lazily, on first predict."""

    name: ClassVar[str]
    task_types: ClassVar[tuple[str, ...]]

    @abstractmethod
    def signature(self) -> ModelSignature:
        """Everything that changes this model's raw output (cache key)."""

    @abstractmethod
    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        """Detections per image, in order, on each image's displayed grid.

        An image the model cannot handle gets a ``PrelabelError`` in its place; an error
        that concerns the whole batch (the model cannot load) is raised.
        """
