"""Where bytes are kept: the prediction cache, export stores, the S3 client, URI helpers
and (re-exported from the core) the atomic file write.
"""

from prelabel.core.atomic import atomic_write, atomic_write_csv, atomic_writer

__all__ = ["atomic_write", "atomic_write_csv", "atomic_writer"]
