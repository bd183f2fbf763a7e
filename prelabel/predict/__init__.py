"""Predictions: the model adapters and their registry (``models``), batches of images through a
model with the cache (``batches``), the overlapped read/infer/write stages (``stages``), model
output made sane (``output``), videos tracked (``videos``), raw prediction files for two-step
runs (``offline``) and shards of a scaled-out run (``shards``).
"""
