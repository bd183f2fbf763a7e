"""The adapter interface: lazy loading, batch prediction, a signature for the cache key."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import ClassVar

from prelabel.core.errors import ImageError, PrelabelError, SettingsError
from prelabel.core.failures import Stage
from prelabel.core.images import DEFAULT_MAX_PIXELS, ImageInfo, LoadedImage, load_image
from prelabel.records import Detections, ModelSignature

__all__ = ["ImageItem", "ModelAdapter", "class_list", "decode_batch"]


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

    def unload(self) -> None:
        """Drop the decoded pixels, keep the bytes: a batch held after inference (to be posted
        or exported while the next one is inferred) costs its bytes only."""
        self._loaded = None


class ModelAdapter(ABC):
    """A model prelabel can run. Subclasses load their weights lazily, on first predict."""

    name: ClassVar[str]
    task_types: ClassVar[tuple[str, ...]]
    # True: an open-vocabulary model whose ``classes`` default to the project's labels.
    prompt_from_project: ClassVar[bool] = False
    # True: an image classifier whose ``choices`` default to the labeling config's Choices.
    choices_from_project: ClassVar[bool] = False
    # False: the model only refines another model's detections (pose on person boxes), so it
    # cannot run alone; True in ``refines``: it can follow a detector in a chain (``detr+vitpose``).
    detects: ClassVar[bool] = True
    refines: ClassVar[bool] = False
    # The stage an image's failure is reported at (raw files: reading the prediction file).
    failure_stage: ClassVar[Stage] = Stage.INFER
    # False: predict never decodes pixels (raw files), so a batch is not decoded ahead for it.
    decodes_pixels: ClassVar[bool] = True
    # Options given per name, ``threshold.person=0.5``: the family (``threshold``, whose annotated
    # type each value must have) -> the option that receives them as a mapping (``thresholds``).
    keyed_options: ClassVar[dict[str, str]] = {}
    # What running the model takes (weights, memory, a key), shown by ``prelabel models``.
    needs: ClassVar[str] = ""

    @abstractmethod
    def signature(self) -> ModelSignature:
        """Everything that changes this model's raw output (cache key)."""

    @abstractmethod
    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        """Detections per image, in order, on each image's displayed grid.

        An image the model cannot handle gets a ``PrelabelError`` in its place; an error
        that concerns the whole batch (the model cannot load) is raised.
        """

    def refine(
        self, batch: Sequence[ImageItem], previous: Sequence[Detections]
    ) -> list[Detections | PrelabelError]:
        """``previous`` (another model's detections of each image) with this model's additions.

        Only adapters with ``refines`` implement it; a chain checks that before it runs.
        """
        raise SettingsError(f"model {self.name!r} cannot follow another model in a chain")

    def drain_counts(self) -> dict[str, int]:
        """Model-specific counts since the last call (e.g. masks dropped), for the run summary."""
        return {}


def decode_batch(
    batch: Sequence[ImageItem], workers: int = 4
) -> tuple[dict[int, LoadedImage], list[Detections | PrelabelError]]:
    """Decode a batch's images in threads (Pillow releases the GIL while decoding).

    Returns the decoded images by position, and the outcome list with each undecodable
    image's error already in its slot (the others hold a placeholder to be overwritten).
    """
    out: list[Detections | PrelabelError] = [ImageError(item.uri, "not predicted") for item in batch]
    loaded: dict[int, LoadedImage] = {}

    def load(i: int) -> None:
        try:
            loaded[i] = batch[i].load()
        except ImageError as exc:
            out[i] = exc

    with ThreadPoolExecutor(max(1, min(workers, len(batch)))) as pool:
        list(pool.map(load, range(len(batch))))
    return dict(sorted(loaded.items())), out


def class_list(classes: Sequence[str] | str | None) -> list[str]:
    """Prompt classes from a list, or from one string separated by commas or dots."""
    if isinstance(classes, str):
        classes = classes.replace(".", ",").split(",")
    return [c.strip() for c in classes or [] if c.strip()]
