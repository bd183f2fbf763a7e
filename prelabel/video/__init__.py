"""Videos as Label Studio video tasks: probing, frames in chunks, tracks, keyframes, MOT, metrics.

``probe`` reads a video's frame times without decoding; ``decode`` streams its frames in
chunks; ``tracks`` holds every object's boxes through a video; ``timeline`` maps Label
Studio's frames to decoded ones; ``keyframes`` thins tracks into ``videorectangle``
keyframes and expands keyframes as the frontend draws them; ``regions`` builds and reads
those results; ``mot`` writes MOTChallenge CSV and COCO JSON; ``metrics`` scores tracks;
``pull`` brings people's tracks back; ``cache`` keeps tracks by content; ``identities`` keeps
a track's id from keyframe to keyframe by box IoU (``detect-track``).

May use ``prelabel.labelstudio`` and ``prelabel.store``; nothing above it (models use it).
"""

from prelabel.video.keyframes import Keyframe, expand, thin
from prelabel.video.metrics import TrackScore, VideoPair, track_scores
from prelabel.video.probe import VideoInfo, probe_video
from prelabel.video.tracks import Track, VideoTracks

__all__ = [
    "Keyframe",
    "Track",
    "TrackScore",
    "VideoInfo",
    "VideoPair",
    "VideoTracks",
    "expand",
    "probe_video",
    "thin",
    "track_scores",
]
