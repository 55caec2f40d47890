"""Reading a clip the way a checkpoint's config asks.

    file --checks--> VideoInfo --decode (decord, or PyAV)--> T frames (T, H, W, 3) uint8
         --rotate, resize shorter side, centre crop--> frames_uint8 (T, S, S, 3)
         --normalise--> tensor (3, T, S, S) float32

Sampling is TSN's (Wang et al. 2016): the decoded frames are cut into T equal
segments; training takes a random frame in each, testing takes each segment's
centre. A video shorter than T frames is sampled with repeats and the result
says so (`Clip.repeated`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .decode import decord_available, inspect_video, read_decord, read_pyav
from .limits import VideoError, VideoInfo, VideoLimits, frame_count_notice
from .probe import probe_video

if TYPE_CHECKING:  # torch is imported lazily so the probe child starts fast
    import torch


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
    choose: Callable[[int], list[int]] | None = None,
) -> Clip:
    """Read `spec.num_frames` frames of a video, TSN-sampled, resized, cropped, normalised.

    decoder: "auto" (decord, PyAV when decord fails or is missing), "decord", "pyav".
    untrusted: probe the file in a child process first (see `probe_video`), then
    decode it with PyAV whatever `decoder` says; use it for anything the project
    did not make itself.
    choose: the frame indices to keep given the decoded count, instead of TSN's
    `spec.num_frames` (the frame cache keeps its own set).
    Raises VideoError for every problem with the file.
    """
    if decoder not in ("auto", "decord", "pyav"):
        raise ValueError(f"decoder must be auto, decord or pyav, got {decoder!r}")
    path = Path(path)
    if untrusted:
        # decord can segfault on crafted input: an untrusted file is decoded here by PyAV only,
        # after the child's probe decoded all of it without dying.
        info = probe_video(path, limits, check_decord=False)
        use_decord = False
    else:
        info = inspect_video(path, limits)
        use_decord = decoder == "decord" or (decoder == "auto" and decord_available())
    if train and not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)

    def sample(available: int) -> list[int]:
        if choose is not None:
            return choose(available)
        return temporal_sample_indices(available, spec.num_frames, train, rng)

    used = "pyav"
    if use_decord:
        try:
            indices, frames, count = read_decord(path, info, limits, sample)
            used = "decord"
        except VideoError:
            raise
        except Exception as e:  # noqa: BLE001 - decord raises its own DECORDError and RuntimeErrors
            if decoder == "decord":
                raise VideoError("decode_failed", path, f"decord: {str(e).splitlines()[0][:200]}") from e
    if used == "pyav":
        indices, frames, count = read_pyav(path, info, limits, sample)

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

