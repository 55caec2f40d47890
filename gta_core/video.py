"""Reading video clips the way a checkpoint's config asks, with limits.

    file --checks--> VideoInfo --decode (decord, or PyAV)--> T frames (T, H, W, 3) uint8
         --rotate, resize shorter side, centre crop--> frames_uint8 (T, S, S, 3)
         --normalise--> tensor (3, T, S, S) float32

Sampling is TSN's (Wang et al. 2016): the decoded frames are cut into T equal
segments; training takes a random frame in each, testing takes each segment's
centre. A video shorter than T frames is sampled with repeats and the result
says so (`Clip.repeated`).

Decoders. decord is the fast path (one batched, seeking read). PyAV is the
fallback when decord cannot read a file, and the decoder of the child-process
probe. Frame counts come from what the demuxer/decoder actually produces: decord
counts demuxed packets when it opens a file (its `len` is not the header's
`nb_frames`), PyAV counts decoded frames. The container's declared frame count
or duration is only compared with that count: a file whose every frame decodes
cleanly but falls clearly short of its header (OpenCV's sample tree.avi
declares 444 frames and holds 68, and every player plays it) is read as what
decodes, and `Clip.notice` says so; a shortfall with decoder errors is
"corrupt". decord conceals errors, so a shortfall it demuxes is checked by a
full PyAV decode first. FFmpeg's log lines (`[h264 @ 0x...] ...`) are silenced
in decord (PyAV leaves FFmpeg's logging off by default): every problem reaches
the caller as a VideoError, none as text on the terminal.

Limits. Every bad input ends in one exception type, `VideoError`, whose
`.reason` is a short code (see `REASONS`). Files from outside the project
(uploads, user folders) should go through `probe_video` / `read_clip(...,
untrusted=True)`: the whole file is decoded once in a child process with a
timeout and an address-space cap, so a decoder that crashes (decord is known to
segfault on some corrupt input) or hangs costs an error, not the app.

Known gap: decord conceals bitstream errors (a bit-flipped H.264 file decodes to
garbage without an error). Only the PyAV path (used by the probe) reports those,
through the decoder's "corrupt frame" flag and its errors.

To test the crash handling, set the environment variable `GTA_VIDEO_PROBE_FAULT`
to `segfault`, `abort` or `hang`: the probe child then kills itself with SIGSEGV,
calls `os.abort()`, or sleeps forever before decoding. Only the child reads it.
"""
from __future__ import annotations

import json
import math
import os
import signal
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily so the probe child starts fast
    import torch

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

PROBE_FAULT_ENV = "GTA_VIDEO_PROBE_FAULT"


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
class ClipSpec:
    """How a checkpoint wants its input: T frames, resize, square crop, normalise.

    mean and std are per RGB channel on the [0, 1] scale (torchvision's
    convention), e.g. ImageNet's (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225).
    """

    num_frames: int = 8
    input_size: int = 224          # side of the square centre crop
    resize_shorter: int = 256      # shorter side after resizing, before the crop
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if not 1 <= self.input_size <= self.resize_shorter:
            raise ValueError(
                f"need 1 <= input_size <= resize_shorter, got {self.input_size} and {self.resize_shorter}"
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need 3 values (R, G, B)")
        if not all(0.0 <= m <= 1.0 for m in self.mean) or not all(s > 0 for s in self.std):
            raise ValueError(
                f"mean must lie in [0, 1] and std be > 0 (the [0, 1] pixel scale), got {self.mean}, {self.std}"
            )

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "ClipSpec":
        """Read the keys num_frames, input_size, resize_shorter, mean, std."""
        missing = [k for k in ("num_frames", "input_size", "resize_shorter", "mean", "std") if k not in cfg]
        if missing:
            raise KeyError(f"checkpoint config lacks {missing}")
        return cls(
            num_frames=int(cfg["num_frames"]),
            input_size=int(cfg["input_size"]),
            resize_shorter=int(cfg["resize_shorter"]),
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
        )


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


@dataclass
class Clip:
    tensor: "torch.Tensor"          # (3, T, S, S) float32, normalised
    frames_uint8: np.ndarray        # (T, S, S, 3) RGB uint8 after resize and crop
    frame_indices: list[int]        # into the decoded frames, length T
    num_decoded_frames: int
    repeated: bool                  # fewer than T frames: some indices repeat
    decoder: str                    # "decord" or "pyav"
    info: VideoInfo | None = field(default=None, repr=False)
    notice: str | None = None       # e.g. fewer frames decode than the container declares


# ---------------------------------------------------------------------------
# Sampling


def temporal_sample_indices(
    num_available: int,
    num_frames: int,
    train: bool,
    rng: np.random.Generator | int | None = None,
) -> list[int]:
    """TSN segment sampling of `num_frames` indices out of `num_available`.

    Segment i covers [i·n/T, (i+1)·n/T). Testing takes floor((i + 0.5)·n/T),
    training floor((i + u_i)·n/T) with u_i ~ U[0, 1). The result is sorted;
    when n < T it repeats indices (n=3, T=8 -> [0,0,0,1,1,2,2,2]).
    """
    if num_available < 1:
        raise ValueError(f"num_available must be >= 1, got {num_available}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    seg = num_available / num_frames
    if train:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        offsets = gen.random(num_frames)
    else:
        offsets = np.full(num_frames, 0.5)
    pos = (np.arange(num_frames) + offsets) * seg
    return [min(int(p), num_available - 1) for p in pos]


# ---------------------------------------------------------------------------
# Cheap checks on the bytes (no decoder involved)

_MAGIC = (
    (4, b"ftyp", "mp4"), (4, b"moov", "mp4"), (4, b"mdat", "mp4"), (4, b"free", "mp4"),
    (4, b"wide", "mp4"), (4, b"skip", "mp4"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (0, b"RIFF", "riff"),
    (0, b"\x00\x00\x01\xba", "mpeg-ps"), (0, b"\x00\x00\x01\xb3", "mpeg-es"),
    (0, b"FLV", "flv"), (0, b"OggS", "ogg"), (0, b"\x30\x26\xb2\x75", "asf"),
    (0, b"GIF8", "gif"), (0, b"YUV4MPEG2", "y4m"),
)


def _sniff(head: bytes) -> str | None:
    for offset, magic, name in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return name
    if head[:1] == b"\x47" and len(head) > 188 and head[188:189] == b"\x47":
        return "mpeg-ts"
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


def _declared_end_exceeds_file(path: Path, kind: str | None, size: int) -> str | None:
    """The container's own sizes say the file should be longer: a truncation.

    mp4: a top-level box runs past the end, or the file has no 'moov' box.
    Matroska/WebM: the Segment element's size runs past the end.
    AVI: the RIFF chunk size runs past the end.
    """
    with open(path, "rb") as f:
        if kind == "mp4":
            pos, boxes = 0, []
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
                boxes.append(box_type)
                if pos + box_size > size:
                    return f"the '{box_type.decode('latin-1')}' box needs {pos + box_size} bytes, the file has {size}"
                pos += box_size
            if b"moov" not in boxes:
                return "no 'moov' box (the index is missing: an unfinished recording or a cut file)"
        elif kind == "matroska":
            buf = f.read(4096)
            try:
                _, pos = _ebml_vint(buf, 0, keep_marker=True)          # EBML header id
                hdr_size, pos = _ebml_vint(buf, pos, keep_marker=False)
                pos += hdr_size
                seg_id, pos = _ebml_vint(buf, pos, keep_marker=True)
                seg_size, pos = _ebml_vint(buf, pos, keep_marker=False)
            except (ValueError, IndexError):
                return None
            if seg_id == 0x18538067 and seg_size >= 0 and pos + seg_size > size:
                return f"the Segment needs {pos + seg_size} bytes, the file has {size}"
        elif kind == "riff":
            hdr = f.read(12)
            if len(hdr) == 12 and hdr[8:12] == b"AVI ":
                riff_size = struct.unpack("<I", hdr[4:8])[0]
                if 8 + riff_size > size:
                    return f"the RIFF chunk needs {8 + riff_size} bytes, the file has {size}"
    return None


# ---------------------------------------------------------------------------
# Header inspection (in process, decodes one frame)


def _finite_positive(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _check_size(path: Path, width: int, height: int, limits: VideoLimits) -> None:
    if width <= 0 or height <= 0:
        raise VideoError("bad_metadata", path, f"frame size {width}x{height}")
    if max(width, height) > limits.max_side or width * height > limits.max_pixels:
        raise VideoError(
            "resolution_too_large", path,
            f"frames are {width}x{height}; the limit is {limits.max_side} per side and "
            f"{limits.max_pixels} pixels",
        )


def _open_container(path: Path, kind: str | None):
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except Exception as e:  # noqa: BLE001 - PyAV raises many types on bad input
        if kind is None:
            raise VideoError("not_a_video", path, f"no video container recognised ({type(e).__name__})") from e
        raise VideoError("corrupt", path, f"the {kind} container cannot be parsed: {e}") from e


def inspect_video(path: str | os.PathLike, limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """Check a file's bytes and header and decode its first frame, in this process.

    Does not count frames (see `probe_video`). Raises VideoError.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError("missing_file", path)
    size = path.stat().st_size
    if size == 0:
        raise VideoError("empty_file", path)
    if size > limits.max_bytes:
        raise VideoError("file_too_large", path, f"{size} bytes; the limit is {limits.max_bytes}")
    with open(path, "rb") as f:
        head = f.read(512)
    kind = _sniff(head)
    short = _declared_end_exceeds_file(path, kind, size)
    if short:
        raise VideoError("truncated", path, short)

    container = _open_container(path, kind)
    with container:
        fmt = container.format.name
        if fmt.endswith("_pipe") or fmt == "image2":
            raise VideoError("not_a_video", path, f"a still image ({fmt}), not a video")
        if not container.streams.video:
            raise VideoError("no_video_stream", path, f"the {fmt} container has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = int(ctx.width or 0), int(ctx.height or 0)
        _check_size(path, width, height, limits)

        fps = _finite_positive(stream.average_rate) or _finite_positive(stream.guessed_rate)
        if fps is not None and not limits.min_fps <= fps <= limits.max_fps:
            raise VideoError("bad_metadata", path, f"{fps:g} frames per second")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = _finite_positive(stream.duration * stream.time_base)
        if duration is None and container.duration is not None and len(container.streams) == 1:
            duration = _finite_positive(container.duration / 1_000_000)
        if duration is not None and duration > limits.max_duration_s:
            raise VideoError("duration_too_long", path, f"{duration:.1f} s; the limit is {limits.max_duration_s:g} s")
        declared = int(stream.frames) if stream.frames and stream.frames > 0 else None
        if declared is None and duration is not None and fps is not None:
            declared = int(round(duration * fps))
        if declared is not None and declared > limits.max_frames:
            raise VideoError("too_many_frames", path, f"{declared} frames declared; the limit is {limits.max_frames}")

        try:
            first = next(container.decode(stream), None)
        except Exception as e:  # noqa: BLE001
            raise VideoError("corrupt", path, f"the first frame does not decode: {e}") from e
        if first is None:
            raise VideoError("corrupt", path, "no frame decodes")
        _check_size(path, first.width, first.height, limits)
        rotation = int(round(first.rotation or 0))
        if rotation % 90 != 0:
            raise VideoError("bad_metadata", path, f"rotation of {rotation} degrees (not a multiple of 90)")
        return VideoInfo(
            path=str(path), size_bytes=size, container=fmt, codec=ctx.name, width=width,
            height=height, fps=fps, duration_s=duration, declared_frames=declared,
            rotation=rotation % 360,
        )


def falls_short(declared: int | None, counted: int) -> bool:
    """Clearly fewer frames than the container declares (headers round durations: 10% and 2 frames slack)."""
    return declared is not None and counted < 0.9 * declared - 2


def frame_count_notice(declared: int | None, decoded: int) -> str | None:
    """One sentence for a clean file that falls short of its declared frame count, else None."""
    if not falls_short(declared, decoded):
        return None
    return f"the container declares {declared} frames but only {decoded} decode; the clip is sampled from those {decoded}"


def _check_count(path: Path, info: VideoInfo, counted: int, limits: VideoLimits, how: str) -> None:
    if counted > limits.max_frames:
        raise VideoError("too_many_frames", path, f"more than {limits.max_frames} frames {how}")
    if counted == 0:
        raise VideoError("corrupt", path, f"no frame {how}")
    if info.fps is not None and counted / info.fps > limits.max_duration_s:
        raise VideoError("duration_too_long", path, f"{counted} frames at {info.fps:g} fps")


# ---------------------------------------------------------------------------
# Decoders


def _decode_pyav(
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
                _check_size(path, frame.width, frame.height, limits)
                if keep is not None and count in keep:
                    kept[count] = frame.to_ndarray(format="rgb24")
                count += 1
                if count > limits.max_frames:
                    raise VideoError("too_many_frames", path, f"more than {limits.max_frames} frames decode")
        except av.error.FFmpegError as e:
            raise VideoError("corrupt", path, f"decoding stopped after {count} frames: {e}") from e
    _check_count(path, info, count, limits, "decode")
    return count, kept


def _read_pyav(path, info, spec, train, rng, limits) -> tuple[list[int], np.ndarray, int]:
    planned = None
    if info.declared_frames:
        planned = temporal_sample_indices(info.declared_frames, spec.num_frames, train, rng)
    count, kept = _decode_pyav(path, info, limits, set(planned) if planned else set())
    indices = planned if planned and count == info.declared_frames else None
    if indices is None:  # the header was wrong about the count: sample again, decode again if needed
        indices = temporal_sample_indices(count, spec.num_frames, train, rng)
        if not set(indices) <= kept.keys():
            _, kept = _decode_pyav(path, info, limits, set(indices))
    return indices, np.stack([kept[i] for i in indices]), count


def _read_decord(path, info, spec, train, rng, limits) -> tuple[list[int], np.ndarray, int]:
    decord = _quiet_decord()
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
    count = len(vr)  # demuxed packets, counted when the reader opens the file
    _check_count(path, info, count, limits, "demux")
    if falls_short(info.declared_frames, count) and info.num_frames is None:
        # decord conceals decoder errors: only a clean PyAV decode (or the probe's) tells a short file
        # from a damaged one. _decode_pyav raises "corrupt" on the first error.
        _decode_pyav(path, info, limits, keep=set())
    indices = temporal_sample_indices(count, spec.num_frames, train, rng)
    unique = sorted(set(indices))
    batch = vr.get_batch(unique).asnumpy()  # (T', H, W, 3) RGB, already turned per the rotation metadata
    _check_size(path, batch.shape[2], batch.shape[1], limits)
    row = {i: k for k, i in enumerate(unique)}
    return indices, batch[[row[i] for i in indices]], count


def _quiet_decord():
    """decord, with its FFmpeg log lines off (they would go straight to the terminal's stderr)."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    return decord


def _decord_available() -> bool:
    try:
        _quiet_decord()
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------
# Geometry and normalisation


def resize_and_crop(frames: np.ndarray, resize_shorter: int, crop: int, rotation: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8 -> rotate by `rotation` (degrees CCW), resize the
    shorter side to resize_shorter, centre-crop crop×crop -> (T, crop, crop, 3)."""
    import cv2

    if rotation:
        frames = np.rot90(frames, k=rotation // 90, axes=(1, 2))
    h, w = frames.shape[1:3]
    scale = resize_shorter / min(h, w)
    new_h, new_w = max(crop, round(h * scale)), max(crop, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    out = np.empty((frames.shape[0], crop, crop, 3), np.uint8)
    for t, frame in enumerate(frames):  # cv2 resizes one image at a time
        resized = cv2.resize(np.ascontiguousarray(frame), (new_w, new_h), interpolation=interp)
        out[t] = resized[top:top + crop, left:left + crop]
    return out


def normalise(frames_uint8: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> "torch.Tensor":
    """(T, H, W, 3) uint8 -> (3, T, H, W) float32, (x/255 - mean) / std."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames_uint8)).float().div_(255.0)
    x = (x - torch.tensor(mean)) / torch.tensor(std)       # (T, H, W, 3)
    return x.permute(3, 0, 1, 2).contiguous()              # (T, H, W, C) -> (C, T, H, W)


# ---------------------------------------------------------------------------
# The entry point


def read_clip(
    path: str | os.PathLike,
    spec: ClipSpec,
    *,
    train: bool = False,
    rng: np.random.Generator | int | None = None,
    limits: VideoLimits = VideoLimits(),
    decoder: str = "auto",
    untrusted: bool = False,
) -> Clip:
    """Read `spec.num_frames` frames of a video, TSN-sampled, resized, cropped, normalised.

    decoder: "auto" (decord, PyAV when decord fails or is missing), "decord", "pyav".
    untrusted: probe the file in a child process first (see `probe_video`); use
    it for anything the project did not make itself.
    Raises VideoError for every problem with the file.
    """
    if decoder not in ("auto", "decord", "pyav"):
        raise ValueError(f"decoder must be auto, decord or pyav, got {decoder!r}")
    path = Path(path)
    if untrusted:
        info = probe_video(path, limits, check_decord=decoder != "pyav")
        use_decord = decoder != "pyav" and bool(info.decord_ok)
    else:
        info = inspect_video(path, limits)
        use_decord = decoder == "decord" or (decoder == "auto" and _decord_available())
    if train and not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)

    used = "pyav"
    if use_decord:
        try:
            indices, frames, count = _read_decord(path, info, spec, train, rng, limits)
            used = "decord"
        except VideoError:
            raise
        except Exception as e:  # noqa: BLE001 - decord raises its own DECORDError and RuntimeErrors
            if decoder == "decord":
                raise VideoError("decode_failed", path, f"decord: {str(e).splitlines()[0][:200]}") from e
    if used == "pyav":
        indices, frames, count = _read_pyav(path, info, spec, train, rng, limits)

    rotation = 0 if used == "decord" else info.rotation  # decord applies the rotation itself
    cropped = resize_and_crop(frames, spec.resize_shorter, spec.input_size, rotation)
    return Clip(
        tensor=normalise(cropped, spec.mean, spec.std),
        frames_uint8=cropped,
        frame_indices=list(indices),
        num_decoded_frames=count,
        repeated=count < spec.num_frames,
        decoder=used,
        info=info,
        notice=frame_count_notice(info.declared_frames, count),
    )


# ---------------------------------------------------------------------------
# The child-process probe


def _probe_in_process(path: str, limits: VideoLimits, check_decord: bool) -> VideoInfo:
    p = Path(path)
    info = inspect_video(p, limits)
    count, _ = _decode_pyav(p, info, limits, keep=None)
    decord_ok = None
    if check_decord and _decord_available():
        decord = _quiet_decord()
        try:
            vr = decord.VideoReader(path, ctx=decord.cpu(0))
            n = len(vr)
            vr.get_batch(sorted({0, n // 2, n - 1})).asnumpy()
            decord_ok = True
        except Exception:  # noqa: BLE001 - any failure means: use PyAV for this file
            decord_ok = False
    return VideoInfo(**{**asdict(info), "num_frames": count, "decord_ok": decord_ok})


def _probe_child_main(argv: list[str]) -> None:
    """Runs in the child: print one JSON line, {"info": ...} or {"error": ...}."""
    import resource

    request = json.loads(argv[0])
    limits = VideoLimits(**request["limits"])
    cap = limits.probe_max_memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    fault = os.environ.get(PROBE_FAULT_ENV, "")
    if fault == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif fault == "abort":
        os.abort()
    elif fault == "hang":
        import time

        time.sleep(10**6)
    try:
        info = _probe_in_process(request["path"], limits, request["check_decord"])
        out = {"info": asdict(info)}
    except VideoError as e:
        out = {"error": {"reason": e.reason, "detail": e.detail}}
    except MemoryError:
        out = {"error": {"reason": "probe_crashed", "detail": "the probe ran out of its memory cap"}}
    except Exception as e:  # noqa: BLE001
        out = {"error": {"reason": "decode_failed", "detail": f"{type(e).__name__}: {e}"}}
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.stdout.flush()


# The child loads this file by path under a private name, so it neither imports
# the gta_core package (and torch with it) nor depends on the parent's sys.path.
_CHILD_BOOT = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_gta_video_probe', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = mod\n"
    "spec.loader.exec_module(mod)\n"
    "mod._probe_child_main(sys.argv[2:])\n"
)


def probe_video(
    path: str | os.PathLike, limits: VideoLimits = VideoLimits(), *, check_decord: bool = True
) -> VideoInfo:
    """Decode the whole file in a child process with a timeout and a memory cap.

    Returns a VideoInfo with num_frames counted by decoding, and decord_ok
    (whether decord opened the file and read its first, middle and last frames
    in the child). Raises VideoError: the file's own problem as the child saw
    it, or "probe_crashed" / "probe_timeout" when the child died or hung.
    """
    path = Path(path).resolve()
    request = json.dumps({"path": str(path), "limits": asdict(limits), "check_decord": check_decord})
    cmd = [sys.executable, "-c", _CHILD_BOOT, str(Path(__file__).resolve()), request]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, timeout=limits.probe_timeout_s, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise VideoError("probe_timeout", path, f"the probe ran past {limits.probe_timeout_s:g} s") from e
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise VideoError("probe_crashed", path, f"the probe's decoder process died with {name}")
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise VideoError(
            "probe_crashed", path, f"the probe exited with status {proc.returncode}: {tail[0][:200]}"
        ) from None
    if "error" in out:
        raise VideoError(out["error"]["reason"], path, out["error"]["detail"])
    return VideoInfo(**out["info"])
