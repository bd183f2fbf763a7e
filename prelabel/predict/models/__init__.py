"""Model adapters behind one interface, found by name in a registry.

Importing this package registers the adapters that need nothing beyond prelabel's own
dependencies; heavier ones load their frameworks only when first asked to predict.
"""

from prelabel.predict.models.base import ImageItem, ModelAdapter
from prelabel.predict.models.registry import adapter_class, available_models, create_model, register

# Registration happens at import of each adapter module.
from prelabel.predict.models import (  # noqa: F401  isort: skip
    detr,
    dinox,
    grounded_sam2,
    ocr,
    rawfiles,
    sam3,
    sam3_video,
    siglip,
    trex,
    vitpose,
)
from prelabel.predict.models import detect_track  # noqa: F401  isort: skip

__all__ = ["ImageItem", "ModelAdapter", "adapter_class", "available_models", "create_model", "register"]
