"""Model chains: ``detr+vitpose+siglip`` fills boxes, keypoints and choices in one run.

The first model detects; each later one refines the detections before it (``vitpose`` adds
keypoints to the person boxes, ``siglip`` the image's choices). An image that fails in any
part keeps that part's error and goes no further. The chain's signature holds every part's,
so changing any part's option changes the cache key and the default model version. Chains
are built by ``prelabel.predict.models.registry.create_model`` from ``a+b`` names.
"""

from __future__ import annotations

from collections.abc import Sequence

from prelabel.core.errors import PrelabelError
from prelabel.predict.models.base import ImageItem, ModelAdapter
from prelabel.records import Detections, ModelSignature

__all__ = ["CHAIN", "ModelChain"]

CHAIN = "+"
"""What joins the parts of a chain's name: ``detr+vitpose``."""


class ModelChain(ModelAdapter):
    """A detector followed by models that refine its detections, run batch by batch."""

    name = "chain"
    task_types = ()

    def __init__(self, parts: Sequence[ModelAdapter]) -> None:
        self.parts = tuple(parts)

    def signature(self) -> ModelSignature:
        signatures = [part.signature() for part in self.parts]
        return ModelSignature(
            CHAIN.join(s.model for s in signatures),
            CHAIN.join(s.revision for s in signatures),
            {s.model: dict(s.params) for s in signatures},
        )

    def predict(self, batch: Sequence[ImageItem]) -> list[Detections | PrelabelError]:
        out = self.parts[0].predict(batch)
        for part in self.parts[1:]:
            done = {i: found for i, found in enumerate(out) if isinstance(found, Detections)}
            if not done:
                break
            refined = part.refine([batch[i] for i in done], list(done.values()))
            for i, found in zip(done, refined, strict=True):
                out[i] = found
        return out

    def drain_counts(self) -> dict[str, int]:
        return {f"{part.name}: {key}": n for part in self.parts for key, n in part.drain_counts().items()}
