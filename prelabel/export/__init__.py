"""Exports of predictions as pseudo-labels: COCO batches (``batches``), the images as displayed
(``images``), shapes as COCO segments and masks (``shapes``), and where they go, a folder or
S3 with a per-batch key index to resume (``targets``).
"""
