"""Pure conversions: pixel boxes <-> Label Studio percent boxes (``geometry``), masks <->
COCO RLE <-> Label Studio brush RLE (``masks``, ``brush``). No I/O, no records.
"""
