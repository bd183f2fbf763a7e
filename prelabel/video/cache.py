"""Tracks in the prediction cache: key = the video's sha256 + the model signature.

Stored as JSON documents beside the image predictions (the cache's named records,
``tracks/<signature>/<sha256>``), so a local folder or an S3 prefix serves videos as it
serves images, written atomically by the same store.
"""

from __future__ import annotations

from prelabel.core.errors import PredictionFileError
from prelabel.records import ModelSignature
from prelabel.store.cache import PredictionCache
from prelabel.video.tracks import VideoTracks

__all__ = ["get_tracks", "put_tracks", "tracks_key"]


def tracks_key(sha256: str, signature: ModelSignature) -> str:
    return f"tracks/{signature.key}/{sha256[:2]}/{sha256}"


def get_tracks(cache: PredictionCache, sha256: str, signature: ModelSignature) -> VideoTracks | None:
    """The cached tracks, or None (a miss; an unreadable entry is one too, and is rewritten)."""
    data = cache.get_marker(tracks_key(sha256, signature))
    if data is None:
        return None
    try:
        return VideoTracks.from_json(data)
    except PredictionFileError:
        return None


def put_tracks(cache: PredictionCache, sha256: str, signature: ModelSignature, tracks: VideoTracks) -> None:
    cache.put_marker(tracks_key(sha256, signature), tracks.to_json())
