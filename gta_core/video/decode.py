"""Decoding: the header inspection, the truncation PyAV does not see, PyAV and decord reads.

Frame counts come from what the demuxer/decoder actually produces: decord
counts demuxed packets when it opens a file (its `len` is not the header's
`nb_frames`), PyAV counts decoded frames. The container's declared frame count
or duration is only compared with that count: a file whose every frame decodes
cleanly but falls clearly short of its header (OpenCV's sample tree.avi
declares 444 frames and holds 68, and every player plays it) is read as what
decodes, and `Clip.notice` says so; a shortfall with decoder errors is
"corrupt". decord conceals errors, so a shortfall it demuxes is checked by a
full PyAV decode first. FFmpeg's log lines (`[h264 @ 0x...] ...`) are silenced
in decord (PyAV leaves FFmpeg's logging off by default).

Truncation. PyAV (FFmpeg) identifies and parses containers; two sizes it does
not check are read here, each with a test (tests/test_video.py) that shows
what PyAV alone makes of the cut file:
- mp4: a top-level box that runs past the end of the file. Cut inside its
  index ('moov'), PyAV opens the file and finds no video stream; cut in the
  index's last bytes, it decodes every frame without a word.
- Matroska/WebM: the Segment's declared size. A cut WebM decodes what is left,
  with no error and no declared frame count to compare with.
What PyAV reports is left to it: an mp4 without its index (it refuses to open
it), a cut AVI (it refuses to open it or stops decoding with an error; an AVI
cut only in its closing index decodes whole and is read). The first bytes only
tell a damaged mp4 / Matroska / RIFF file ("corrupt") from a file that is no
video at all ("not_a_video") when PyAV cannot open it.

Known gap: decord conceals bitstream errors (a bit-flipped H.264 file decodes to
garbage without an error). Only the PyAV path (used by the probe) reports those,
through the decoder's "corrupt frame" flag and its errors.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from .limits import (
    VideoError,
    VideoInfo,
    VideoLimits,
    check_count,
    check_size,
    falls_short,
    finite_positive,
)

# ---------------------------------------------------------------------------
# What PyAV does not check: the container's own sizes against the file's

_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_SEGMENT_ID = 0x18538067


def _container_kind(head: bytes) -> str | None:
    """mp4, matroska or riff from the first bytes; None for anything else."""
    if head[4:8] in _MP4_BOXES:
        return "mp4"
    if head[:4] == _EBML_MAGIC:
        return "matroska"
    if head[:4] == b"RIFF":
        return "riff"
    return None


def _ebml_vint(buf: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    """Read an EBML variable-length integer; return (value, next position)."""
    first = buf[pos]
    length = 8 - first.bit_length() + 1
    if first == 0 or pos + length > len(buf):
        raise ValueError("bad EBML vint")
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for b in buf[pos + 1:pos + length]:
        value = (value << 8) | b
    if not keep_marker and value == (1 << (7 * length)) - 1:
        value = -1  # "unknown size" (live streams)
    return value, pos + length


def _mp4_cut(f, size: int) -> str | None:
    """A top-level box that runs past the end of the file."""
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        hdr = f.read(16)
        box_size, box_type = struct.unpack(">I4s", hdr[:8])
        if box_size == 1 and len(hdr) == 16:
            box_size = struct.unpack(">Q", hdr[8:16])[0]
        elif box_size == 0:
            box_size = size - pos
        if box_size < 8:
            return None  # not parseable as boxes; let the demuxer judge
        if pos + box_size > size:
            return f"the '{box_type.decode('latin-1')}' box needs {pos + box_size} bytes, the file has {size}"
        pos += box_size
    return None


def _matroska_cut(f, size: int) -> str | None:
    """The Segment element's declared size runs past the end."""
    buf = f.read(4096)
    try:
        _, pos = _ebml_vint(buf, 0, keep_marker=True)          # EBML header id
        hdr_size, pos = _ebml_vint(buf, pos, keep_marker=False)
        pos += hdr_size
        seg_id, pos = _ebml_vint(buf, pos, keep_marker=True)
        seg_size, pos = _ebml_vint(buf, pos, keep_marker=False)
    except (ValueError, IndexError):
        return None
    if seg_id == _SEGMENT_ID and seg_size >= 0 and pos + seg_size > size:
        return f"the Segment needs {pos + seg_size} bytes, the file has {size}"
    return None


def _truncation(path: Path, kind: str | None, size: int) -> str | None:
    """Why the container's own sizes say the file should be longer, or None."""
    cut = {"mp4": _mp4_cut, "matroska": _matroska_cut}.get(kind)
    if cut is None:
        return None
    with open(path, "rb") as f:
        return cut(f, size)


# ---------------------------------------------------------------------------
# Header inspection (in process, decodes one frame)


def _open_container(path: Path, kind: str | None):
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except Exception as e:  # noqa: BLE001 - PyAV raises many types on bad input
        if kind is None:
            raise VideoError("not_a_video", path, f"no video container recognised ({type(e).__name__})") from e
        raise VideoError("corrupt", path, f"the {kind} container cannot be parsed: {e}") from e


def _check_file(path: Path, limits: VideoLimits) -> tuple[int, str | None]:
    """The file's size against the limits and its container's own sizes; returns (size, kind)."""
    if not path.is_file():
        raise VideoError("missing_file", path)
    size = path.stat().st_size
    if size == 0:
        raise VideoError("empty_file", path)
    if size > limits.max_bytes:
        raise VideoError("file_too_large", path, f"{size} bytes; the limit is {limits.max_bytes}")
    with open(path, "rb") as f:
        kind = _container_kind(f.read(16))
    short = _truncation(path, kind, size)
    if short:
        raise VideoError("truncated", path, short)
    return size, kind


def inspect_video(path: str | os.PathLike, limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """Check a file's bytes and header and decode its first frame, in this process.

    Does not count frames (see `probe_video`). Raises VideoError.
    """
    path = Path(path)
    size, kind = _check_file(path, limits)
    with _open_container(path, kind) as container:
        fmt = container.format.name
        if fmt.endswith("_pipe") or fmt == "image2":
            raise VideoError("not_a_video", path, f"a still image ({fmt}), not a video")
        if not container.streams.video:
            raise VideoError("no_video_stream", path, f"the {fmt} container has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        check_size(path, width, height, limits)
        fps, duration, declared = _declared_timing(path, container, stream, limits)
        try:
            first = next(container.decode(stream), None)
        except Exception as e:  # noqa: BLE001
            raise VideoError("corrupt", path, f"the first frame does not decode: {e}") from e
        if first is None:
            raise VideoError("corrupt", path, "no frame decodes")
        check_size(path, first.width, first.height, limits)
        rotation = int(round(first.rotation or 0))
        if rotation % 90 != 0:
            raise VideoError("bad_metadata", path, f"rotation of {rotation} degrees (not a multiple of 90)")
        return VideoInfo(
            path=str(path), size_bytes=size, container=fmt, codec=ctx.name, width=width,
            height=height, fps=fps, duration_s=duration, declared_frames=declared,
            rotation=rotation % 360,
        )


def _declared_timing(path: Path, container, stream, limits: VideoLimits) -> tuple[float | None, float | None, int | None]:
    """(fps, duration in s, declared frames) as the container states them, each checked against the limits."""
    fps = finite_positive(stream.average_rate) or finite_positive(stream.guessed_rate)
    if fps is not None and not limits.min_fps <= fps <= limits.max_fps:
        raise VideoError("bad_metadata", path, f"{fps:g} frames per second")
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = finite_positive(stream.duration * stream.time_base)
    if duration is None and container.duration is not None and len(container.streams) == 1:
        duration = finite_positive(container.duration / 1_000_000)
    if duration is not None and duration > limits.max_duration_s:
        raise VideoError("duration_too_long", path, f"{duration:.1f} s; the limit is {limits.max_duration_s:g} s")
    declared = int(stream.frames) if stream.frames and stream.frames > 0 else None
    if declared is None and duration is not None and fps is not None:
        declared = int(round(duration * fps))
    if declared is not None and declared > limits.max_frames:
        raise VideoError("too_many_frames", path, f"{declared} frames declared; the limit is {limits.max_frames}")
    return fps, duration, declared


# ---------------------------------------------------------------------------
# Decoders


def decode_pyav(
    path: Path, info: VideoInfo, limits: VideoLimits, keep: set[int] | None
) -> tuple[int, dict[int, np.ndarray]]:
    """Decode every frame; return (count, {index: RGB frame} for indices in keep)."""
    import av

    kept: dict[int, np.ndarray] = {}
    count = 0
    container = _open_container(path, "video")
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if frame.is_corrupt:
                    raise VideoError("corrupt", path, f"frame {count} is flagged corrupt by the decoder")
                check_size(path, frame.width, frame.height, limits)
                if keep is not None and count in keep:
                    kept[count] = frame.to_ndarray(format="rgb24")
                count += 1
                if count > limits.max_frames:
                    raise VideoError("too_many_frames", path, f"more than {limits.max_frames} frames decode")
        except av.error.FFmpegError as e:
            raise VideoError("corrupt", path, f"decoding stopped after {count} frames: {e}") from e
    check_count(path, info, count, limits, "decode")
    return count, kept


def read_pyav(path: Path, info: VideoInfo, limits: VideoLimits, sample) -> tuple[list[int], np.ndarray, int]:
    """(indices, frames (T, H, W, 3) RGB, decoded count); `sample(n)` picks the indices among n frames."""
    planned = None
    if info.declared_frames:
        planned = sample(info.declared_frames)
    count, kept = decode_pyav(path, info, limits, set(planned) if planned else set())
    indices = planned if planned and count == info.declared_frames else None
    if indices is None:  # the header was wrong about the count: sample again, decode again if needed
        indices = sample(count)
        if not set(indices) <= kept.keys():
            _, kept = decode_pyav(path, info, limits, set(indices))
    return indices, np.stack([kept[i] for i in indices]), count


def read_decord(path: Path, info: VideoInfo, limits: VideoLimits, sample) -> tuple[list[int], np.ndarray, int]:
    """`read_pyav` through decord: one batched, seeking read of the sampled frames."""
    decord = quiet_decord()
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
    count = len(vr)  # demuxed packets, counted when the reader opens the file
    check_count(path, info, count, limits, "demux")
    if falls_short(info.declared_frames, count) and info.num_frames is None:
        # decord conceals decoder errors: only a clean PyAV decode (or the probe's) tells a short file
        # from a damaged one. decode_pyav raises "corrupt" on the first error.
        decode_pyav(path, info, limits, keep=set())
    indices = sample(count)
    unique = sorted(set(indices))
    batch = vr.get_batch(unique).asnumpy()  # (T', H, W, 3) RGB, already turned per the rotation metadata
    check_size(path, batch.shape[2], batch.shape[1], limits)
    row = {i: k for k, i in enumerate(unique)}
    return indices, batch[[row[i] for i in indices]], count


def quiet_decord():
    """decord, with its FFmpeg log lines off (they would go straight to the terminal's stderr)."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    return decord


def decord_available() -> bool:
    try:
        quiet_decord()
    except ImportError:
        return False
    return True

