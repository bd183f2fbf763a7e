"""The core every wing stands on: image decoding, settings and their defaults, errors and the
per-image failure record, atomic writes, retries, secret redaction, filesystem paths.

Imports nothing else of prelabel.
"""
