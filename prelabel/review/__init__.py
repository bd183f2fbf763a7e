"""Yes/no review: review sets (SQLite), image features, and active learning on them.

A review set is one SQLite file of items (an image, optionally a box, a label, the
detector's score, the task) and the answers people give. Features are embeddings of each
item's image or box crop, stored as Parquet keyed by item id. The learner fits one
logistic regression per label on the answered items and says which item to ask next.
"""

from prelabel.review.learning import Suggestion, held_out_accuracy, next_items
from prelabel.review.sets import ReviewItem, ReviewSet, items_from_references, items_from_tasks

__all__ = [
    "ReviewItem",
    "ReviewSet",
    "Suggestion",
    "held_out_accuracy",
    "items_from_references",
    "items_from_tasks",
    "next_items",
]
