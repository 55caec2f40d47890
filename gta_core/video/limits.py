"""Limits and errors: every bad input ends in one `VideoError` with a reason code.

`VideoLimits` caps a read before and during decoding; `VideoInfo` is what the
checks learned about a file; the `check_*` functions apply the limits. The
probe's child process imports this package: numpy and the standard library only.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REASONS = {
    "missing_file": "the file does not exist or is not a regular file",
    "empty_file": "the file is empty",
    "file_too_large": "the file is larger than the byte limit",
    "not_a_video": "the file is not a video container (or is a still image)",
    "no_video_stream": "the container has no video stream",
    "truncated": "the file ends before the container says it does",
    "corrupt": "the container or the video bitstream is damaged",
    "too_many_frames": "the video has more frames than the frame limit",
    "resolution_too_large": "a frame is larger than the resolution limit",
    "duration_too_long": "the video lasts longer than the duration limit",
    "bad_metadata": "absurd frame rate, frame size or rotation metadata",
    "decode_failed": "the decoder failed for another reason",
    "probe_crashed": "the probe's child process died (decoder crash or memory cap)",
    "probe_timeout": "the probe's child process ran past its time limit",
}



class VideoError(Exception):
    """A video that cannot be used; `.reason` is one of `REASONS`' keys."""

    def __init__(self, reason: str, path: str | os.PathLike, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown VideoError reason {reason!r}")
        self.reason = reason
        self.path = str(path)
        self.detail = detail or REASONS[reason]
        super().__init__(f"{self.path}: {self.detail} [{reason}]")

    def __reduce__(self):  # picklable across DataLoader workers
        return (VideoError, (self.reason, self.path, self.detail))



@dataclass(frozen=True)
class VideoLimits:
    """Caps applied before and during decoding.

    Defaults: the largest inputs a researcher plausibly feeds a 224-pixel,
    8-to-32-frame model, with room to spare, while bounding one read to a few
    hundred MB of memory and seconds of decoding.
    - max_bytes 256 MiB: an SSv2 clip is ~0.3 MB, a 10 s Kinetics clip a few MB;
      a 2-minute 1080p phone video is ~200 MB.
    - max_frames 3600: 2 minutes at 30 fps (SSv2 clips have ~45 frames).
    - max_duration_s 600: 10 minutes of nominal duration.
    - max_pixels 3840×2160 (4K UHD) and max_side 4096: one RGB frame is then at
      most ~25 MB, so T=32 frames stay under 1 GB.
    - fps in [0.5, 1000]: below, a "video" is a slide show with absurd
      timestamps; above, it is metadata nonsense (high-speed cameras top out
      near 1000 fps in consumer files).
    - probe_timeout_s 30 and probe_max_memory_bytes 4 GiB for the child probe.
    """

    max_bytes: int = 256 * 1024 * 1024
    max_frames: int = 3600
    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160
    max_side: int = 4096
    min_fps: float = 0.5
    max_fps: float = 1000.0
    probe_timeout_s: float = 30.0
    probe_max_memory_bytes: int = 4 * 1024**3



@dataclass(frozen=True)
class VideoInfo:
    """What the checks learned about a file. num_frames is None until counted."""

    path: str
    size_bytes: int
    container: str
    codec: str
    width: int
    height: int
    fps: float | None
    duration_s: float | None       # declared by the container (may be None)
    declared_frames: int | None    # the container's own count or duration×fps
    rotation: int                  # degrees counter-clockwise, a multiple of 90
    num_frames: int | None = None  # counted by decoding (probe) or demuxing (decord)
    decord_ok: bool | None = None  # the probe opened and read the file with decord



def finite_positive(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def check_size(path: Path, width: int, height: int, limits: VideoLimits) -> None:
    if width <= 0 or height <= 0:
        raise VideoError("bad_metadata", path, f"frame size {width}x{height}")
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        raise VideoError(
            "resolution_too_large", path,
            f"frames are {width}x{height}; the limit is {limits.max_side} per side and "
            f"{limits.max_pixels} pixels",
        )


def falls_short(declared: int | None, counted: int) -> bool:
    """Clearly fewer frames than the container declares (headers round durations: 10% and 2 frames slack)."""
    return declared is not None and counted < 0.9 * declared - 2


def frame_count_notice(declared: int | None, decoded: int) -> str | None:
    """One sentence for a clean file that falls short of its declared frame count, else None."""
    if not falls_short(declared, decoded):
        return None
    return f"the container declares {declared} frames but only {decoded} decode; the clip is sampled from those {decoded}"


def check_count(path: Path, info: VideoInfo, counted: int, limits: VideoLimits, how: str) -> None:
    if counted > limits.max_frames:
        raise VideoError("too_many_frames", path, f"more than {limits.max_frames} frames {how}")
    if counted == 0:
        raise VideoError("corrupt", path, f"no frame {how}")
    if info.fps is not None and counted / info.fps > limits.max_duration_s:
        raise VideoError("duration_too_long", path, f"{counted} frames at {info.fps:g} fps")
