"""Reading video clips the way a checkpoint's config asks, with limits.

    clip.py     ClipSpec, resize / crop / normalise, `read_clip` (the entry point)
    sampling.py which frames: TSN segments or dense clips (MMAction2's SampleFrames)
    decode.py   the header inspection, the truncation PyAV does not see, PyAV and decord reads
    probe.py    `probe_video`: the whole file decoded in a child process (timeout, memory cap)
    listing.py  `VIDEO_SUFFIXES`, `find_videos` (the video files of a folder)
    limits.py   `VideoLimits`, `VideoInfo`, `VideoError` and its reason codes (`REASONS`)

Decoders. decord is the fast path (one batched, seeking read). PyAV is the
fallback when decord cannot read a file, and the decoder of the child-process
probe. Every problem reaches the caller as a VideoError, none as text on the
terminal.

Limits. Every bad input ends in one exception type, `VideoError`, whose
`.reason` is a short code (see `REASONS`). Files from outside the project
(uploads, user folders) go through `probe_video` / `read_clip(...,
untrusted=True)`, so a decoder that crashes or hangs costs an error, not the app.

The modules import each other relatively and nothing else of gta_core: the
probe's child loads this package on its own (see probe.py).
"""
from .clip import (
    Clip, ClipSpec, crop_offsets, normalise, read_clip, resize_and_crop, resize_frames, sampling_problem,
    temporal_sample_indices,
)
from .sampling import dense_views, sample_views, tsn_views, window_views
from .decode import inspect_video
from .listing import VIDEO_SUFFIXES, find_videos
from .limits import REASONS, VideoError, VideoInfo, VideoLimits, falls_short, frame_count_notice
from .probe import probe_video

__all__ = [
    "REASONS", "VIDEO_SUFFIXES", "Clip", "ClipSpec", "VideoError", "VideoInfo", "VideoLimits", "crop_offsets",
    "dense_views", "falls_short", "find_videos", "frame_count_notice", "inspect_video", "normalise", "probe_video",
    "read_clip", "resize_and_crop", "resize_frames", "sample_views", "sampling_problem", "temporal_sample_indices",
    "tsn_views", "window_views",
]
