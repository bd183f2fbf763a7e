"""How good a model version's predictions were, against what people kept (``prelabel quality``).

``pairs`` reads predictions and annotations into regions with one converter, ``matching``
pairs them up and tells region fates, ``coco`` computes COCO AP, ``metrics`` counts,
``report`` and ``chart`` write the results.
"""

from prelabel.quality.matching import DEFAULT_KEYPOINT_TOLERANCE
from prelabel.quality.pairs import Pairs, TaskPair, load_pairs, pair_tasks, require_model_version
from prelabel.quality.report import QualityReport, QualitySummary, measure_quality, write_quality

__all__ = [
    "DEFAULT_KEYPOINT_TOLERANCE",
    "Pairs",
    "QualityReport",
    "QualitySummary",
    "TaskPair",
    "load_pairs",
    "measure_quality",
    "pair_tasks",
    "require_model_version",
    "write_quality",
]
