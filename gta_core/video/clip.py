"""Reading a clip the way a checkpoint's config asks.

    file --checks--> VideoInfo --decode (decord, or PyAV)--> the sampled frames (V·T, H, W, 3) uint8
         --rotate, resize (shorter side, or exactly H×W), crop--> frames_uint8 (T, S, S, 3) per view
         --normalise (RGB or BGR)--> tensor (3, T, S, S) float32 per view

Sampling (sampling.py) is TSN's segments or MMAction2's dense clips, as the
checkpoint's config says; both match MMAction2's SampleFrames index for
index, and resize / crop match its Resize / CenterCrop / ThreeCrop with
interpolation "bilinear" (tests/test_pipelines.py). A video too short for the
clip is sampled with repeats and the result says so (`Clip.repeated`). A spec
with several test views (num_clips, twice_sample, ThreeCrop) gives them all
with `all_views=True`; the primary view (the middle clip, centre crop) is the
one the app shows.
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
from .sampling import SAMPLINGS, primary_view, sample_views, tsn_views

if TYPE_CHECKING:  # torch is imported lazily so the probe child starts fast
    import torch


CROPS = ("centre", "three", "ten")
NUM_CROPS = {"centre": 1, "three": 3, "ten": 10}
FLIPPED = ", flipped"            # the suffix of TenCrop's mirrored crops' names
INTERPOLATIONS = ("area", "bilinear")
CROP_ROUNDINGS = ("floor", "round")
CHANNEL_ORDERS = ("rgb", "bgr")
AVERAGES = ("prob", "score")


@dataclass(frozen=True)
class ClipSpec:
    """How a checkpoint wants its input: which frames, resize, crop, normalise, and its test views.

    mean and std are per RGB channel on the [0, 1] scale (torchvision's
    convention), e.g. ImageNet's (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225).
    sampling "tsn" takes one frame from each of num_frames segments; "dense"
    takes num_frames frames frame_interval apart, num_clips times at test;
    "window" is DenseSampleFrames' (gta_core/video/sampling.py). crop "three" is MMAction2's ThreeCrop (three
    squares along the longer side, the side equal to the shorter one); "ten" is its TenCrop (four corners and
    the centre, each also mirrored left-right).
    interpolation "area" is ours (INTER_AREA when shrinking), "bilinear" is
    mmcv.imresize's. channel_order "bgr" flips the normalised channels.
    Multi-view logits are averaged as softmax ("prob") or raw ("score").
    resize_to (H, W) resizes every frame to exactly that size, the aspect not kept
    (torchvision's VideoClassification, MMAction2's Resize keep_ratio=False); then
    resize_shorter is not used. crop_rounding places an odd margin's extra pixel:
    "floor" (W − S) // 2 as MMAction2's CenterCrop, "round" round((W − S) / 2),
    half to even, as torchvision's center_crop (128×171 -> 112: left 29 or 30).
    """

    num_frames: int = 8
    input_size: int = 224          # side of the square crop
    resize_shorter: int = 256      # shorter side after resizing, before the crop
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    sampling: str = "tsn"
    frame_interval: int = 1
    num_clips: int = 1
    twice_sample: bool = False
    crop: str = "centre"
    interpolation: str = "area"
    channel_order: str = "rgb"
    average_views: str = "prob"
    resize_to: tuple[int, int] | None = None    # (H, W) exactly, before the crop; None: resize_shorter
    crop_rounding: str = "floor"

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if isinstance(self.resize_to, list):     # from JSON; a tuple keeps the frozen spec hashable
            object.__setattr__(self, "resize_to", tuple(self.resize_to))
        problem = resize_problem(self.resize_to)
        if problem:
            raise ValueError(problem)
        if self.resize_to is None and not 1 <= self.input_size <= self.resize_shorter:
            raise ValueError(
                f"need 1 <= input_size <= resize_shorter, got {self.input_size} and {self.resize_shorter}"
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need 3 values (R, G, B)")
        if not all(0.0 <= m <= 1.0 for m in self.mean) or not all(s > 0 for s in self.std):
            raise ValueError(
                f"mean must lie in [0, 1] and std be > 0 (the [0, 1] pixel scale), got {self.mean}, {self.std}"
            )
        problem = sampling_problem(self)
        if problem:
            raise ValueError(problem)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "ClipSpec":
        """Read the keys num_frames, input_size, resize_shorter, mean, std (required) and the
        sampling / view keys (optional: a config written before them reads as TSN, one centre crop)."""
        missing = [k for k in ("num_frames", "input_size", "resize_shorter", "mean", "std") if k not in cfg]
        if missing:
            raise KeyError(f"checkpoint config lacks {missing}")
        optional = {name: cfg[name] for name in VIEW_KEYS if name in cfg}
        if cfg.get("resize_to") is not None:
            optional["resize_to"] = tuple(cfg["resize_to"])
        return cls(
            num_frames=int(cfg["num_frames"]),
            input_size=int(cfg["input_size"]),
            resize_shorter=int(cfg["resize_shorter"]),
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
            **optional,
        )

    @property
    def num_views(self) -> int:
        clips = self.num_clips * (2 if self.twice_sample else 1)
        return clips * NUM_CROPS[self.crop]


VIEW_KEYS = ("sampling", "frame_interval", "num_clips", "twice_sample", "crop", "interpolation",
             "channel_order", "average_views", "crop_rounding")


MAX_RESIZE = 4096


def resize_problem(resize_to) -> str | None:
    """What is wrong with a resize_to value (None or (H, W), each an integer in [1, MAX_RESIZE]), or None."""
    if resize_to is None:
        return None
    if (not isinstance(resize_to, (tuple, list)) or len(resize_to) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_RESIZE for v in resize_to)):
        return f"resize_to must be None or two integers (height, width) in [1, {MAX_RESIZE}], got {resize_to!r}"
    return None


def sampling_problem(spec) -> str | None:
    """What is wrong with the sampling / view fields of a ClipSpec or a CheckpointConfig, or None."""
    choices = {"sampling": SAMPLINGS, "crop": CROPS, "interpolation": INTERPOLATIONS,
               "channel_order": CHANNEL_ORDERS, "average_views": AVERAGES, "crop_rounding": CROP_ROUNDINGS}
    for name, allowed in choices.items():
        if getattr(spec, name) not in allowed:
            return f"unknown {name} {getattr(spec, name)!r} (supported: {', '.join(map(repr, allowed))})"
    for name, top in (("frame_interval", 64), ("num_clips", 32)):
        value = getattr(spec, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            return f"{name} must be an integer in [1, {top}], got {value!r}"
    if not isinstance(spec.twice_sample, bool):
        return f"twice_sample must be true or false, got {spec.twice_sample!r}"
    if spec.sampling == "tsn" and (spec.frame_interval != 1 or spec.num_clips != 1):
        return "tsn sampling takes one frame per segment: frame_interval and num_clips must be 1"
    if spec.sampling == "window" and (spec.twice_sample or (spec.num_frames - 1) * spec.frame_interval >= 64):
        return "window sampling keeps its T frames inside 64 (DenseSampleFrames' sample_range), without twice_sample"
    if spec.sampling == "dense" and spec.twice_sample and spec.num_clips < 2:
        return "dense twice_sample needs num_clips >= 2 (MMAction2 spreads the clips over num_clips - 1 gaps)"
    resize_to = getattr(spec, "resize_to", None)
    problem = resize_problem(resize_to)
    if problem:
        return problem
    shorter = min(resize_to) if resize_to else spec.resize_shorter
    if resize_to and not 1 <= spec.input_size <= shorter:
        return f"the crop ({spec.input_size}) does not fit in resize_to {resize_to[0]}×{resize_to[1]}"
    if spec.crop != "centre" and spec.crop_rounding != "floor":
        return f"crop_rounding 'round' (torchvision's center_crop) is for one centre crop, not {spec.crop!r}"
    if spec.crop == "three" and spec.input_size != shorter:
        return (f"crop 'three' (MMAction2's ThreeCrop) needs the crop side equal to the shorter side, "
                f"got {spec.input_size} and {shorter}")
    return None



@dataclass
class Clip:
    tensor: "torch.Tensor"          # (3, T, S, S) float32, normalised: the primary view
    frames_uint8: np.ndarray        # (T, S, S, 3) RGB uint8 after resize and crop (the primary view)
    frame_indices: list[int]        # into the decoded frames, length T (the primary view)
    num_decoded_frames: int
    repeated: bool                  # fewer frames than the clip spans: some indices repeat or wrap
    decoder: str                    # "decord" or "pyav"
    info: VideoInfo | None = field(default=None, repr=False)
    notice: str | None = None       # e.g. fewer frames decode than the container declares
    # The primary view's crop as fractions of the whole (rotated) frame: (top, left, bottom, right); the
    # resize scales each axis alone, so a fraction of the resized frame is one of the frame, aspect kept or not.
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    frame_size: tuple[int, int] = (0, 0)                  # (H, W) of the decoded, rotated frame
    # Every test view (read_clip(..., all_views=True)), in MMAction2's order: crops outer, clips inner.
    views: "torch.Tensor | None" = field(default=None, repr=False)    # (V, 3, T, S, S)
    view_names: list[str] = field(default_factory=list)
    view_frame_indices: list[list[int]] = field(default_factory=list)



# ---------------------------------------------------------------------------
# Sampling


def temporal_sample_indices(
    num_available: int,
    num_frames: int,
    train: bool,
    rng: np.random.Generator | int | None = None,
) -> list[int]:
    """TSN segment sampling of `num_frames` indices out of `num_available` (see sampling.tsn_views).

    Segment i covers [i·n/T, (i+1)·n/T). Testing takes its centre, training a
    random frame in it. The result is sorted; when n < T it repeats indices
    (n=3, T=8 -> [0,0,0,1,1,2,2,2]).
    """
    return tsn_views(num_available, num_frames, train, rng)[0]



# ---------------------------------------------------------------------------
# Geometry and normalisation


def resized_size(height: int, width: int, resize_shorter: int, crop: int) -> tuple[int, int]:
    """(H', W') with the shorter side at resize_shorter, each side ⌊x·s + ½⌋ as mmcv.rescale_size, never below crop."""
    scale = resize_shorter / min(height, width)
    return max(crop, int(height * scale + 0.5)), max(crop, int(width * scale + 0.5))


def resize_frames(frames: np.ndarray, resize_shorter: int, crop: int, rotation: int = 0,
                  interpolation: str = "area", size: tuple[int, int] | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 -> rotate by `rotation` (degrees CCW), shorter side to resize_shorter -> (T, H', W', 3).

    size (H', W'): exactly that size instead, the aspect not kept (ClipSpec.resize_to).
    "area": INTER_AREA when shrinking (less aliasing), INTER_LINEAR when enlarging;
    "bilinear": INTER_LINEAR always, as mmcv.imresize (MMAction2's Resize).
    """
    import cv2

    if rotation:
        frames = np.rot90(frames, k=rotation // 90, axes=(1, 2))
    h, w = frames.shape[1:3]
    if size is None:
        new_h, new_w = resized_size(h, w, resize_shorter, crop)
        shrinking = resize_shorter < min(h, w)
    else:
        (new_h, new_w), shrinking = size, size[0] <= h and size[1] <= w   # INTER_AREA only where no side grows
    interp = cv2.INTER_AREA if interpolation == "area" and shrinking else cv2.INTER_LINEAR
    out = np.empty((frames.shape[0], new_h, new_w, 3), np.uint8)
    for t, frame in enumerate(frames):  # cv2 resizes one image at a time
        out[t] = cv2.resize(np.ascontiguousarray(frame), (new_w, new_h), interpolation=interp)
    return out


def crop_offsets(height: int, width: int, crop: int, mode: str = "centre",
                 rounding: str = "floor") -> list[tuple[str, int, int]]:
    """(name, top, left) of each crop: the centre (CenterCrop; "round": torchvision's center_crop),
    MMAction2's ThreeCrop order (left, right, centre along the width when the crop spans the height; else
    top, bottom, centre), or its TenCrop order (each corner and the centre, then the same crop mirrored,
    named with FLIPPED; its offsets are multiples of a quarter of the margin, floored)."""
    top, left = (height - crop) // 2, (width - crop) // 2
    if mode == "ten":
        down, across = (height - crop) // 4, (width - crop) // 4
        places = [("upper left", 0, 0), ("upper right", 0, 4 * across), ("lower left", 4 * down, 0),
                  ("lower right", 4 * down, 4 * across), ("centre", 2 * down, 2 * across)]
        return [(name + flip, y, x) for name, y, x in places for flip in ("", FLIPPED)]
    if mode == "centre" and rounding == "round":
        return [("centre", int(round((height - crop) / 2)), int(round((width - crop) / 2)))]
    if mode == "centre":
        return [("centre", top, left)]
    if crop == height:
        return [("left", 0, 0), ("right", 0, 2 * left), ("centre", 0, left)]
    return [("top", 0, 0), ("bottom", 2 * top, 0), ("centre", top, 0)]


def resize_and_crop(frames: np.ndarray, resize_shorter: int, crop: int, rotation: int = 0,
                    interpolation: str = "area", size: tuple[int, int] | None = None) -> np.ndarray:
    """(T, H, W, 3) uint8 -> rotate, resize the shorter side to resize_shorter (or to `size`), centre-crop -> (T, crop, crop, 3)."""
    resized = resize_frames(frames, resize_shorter, crop, rotation, interpolation, size)
    _, top, left = crop_offsets(*resized.shape[1:3], crop)[0]
    return np.ascontiguousarray(resized[:, top:top + crop, left:left + crop])


def normalise(frames_uint8: np.ndarray, mean: Sequence[float], std: Sequence[float],
              channel_order: str = "rgb") -> "torch.Tensor":
    """(T, H, W, 3) uint8 RGB -> (3, T, H, W) float32, (x/255 - mean) / std; "bgr" flips the channels after."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames_uint8)).float().div_(255.0)
    x = (x - torch.tensor(mean)) / torch.tensor(std)       # (T, H, W, 3)
    x = x.permute(3, 0, 1, 2)                              # (T, H, W, C) -> (C, T, H, W)
    return (x.flip(0) if channel_order == "bgr" else x).contiguous()



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
    all_views: bool = False,
) -> Clip:
    """Read a clip of `spec.num_frames` frames as the spec samples, resizes, crops and normalises it.

    decoder: "auto" (decord, PyAV when decord fails or is missing), "decord", "pyav".
    untrusted: probe the file in a child process first (see `probe_video`), then
    decode it with PyAV whatever `decoder` says; use it for anything the project
    did not make itself.
    all_views: also return every test view (`Clip.views`, spec.num_views of them);
    otherwise only the primary one (the middle clip's centre crop) is built.
    choose: the frame indices to keep given the decoded count, instead of the spec's
    sampling (the frame cache keeps its own set); one view of that many frames.
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
    temporal: list[list[int]] = []

    def sample(available: int) -> list[int]:
        # PyAV may sample again with the decoded count.
        temporal[:] = [choose(available)] if choose is not None else sample_views(available, spec, train, rng)
        keep = temporal if all_views else [temporal[primary_view(len(temporal))]]
        return [i for view in keep for i in view]

    used = "pyav"
    if use_decord:
        try:
            _, frames, count = read_decord(path, info, limits, sample)
            used = "decord"
        except VideoError:
            raise
        except Exception as e:  # noqa: BLE001 - decord raises its own DECORDError and RuntimeErrors
            if decoder == "decord":
                raise VideoError("decode_failed", path, f"decord: {str(e).splitlines()[0][:200]}") from e
    if used == "pyav":
        _, frames, count = read_pyav(path, info, limits, sample)

    rotation = 0 if used == "decord" else info.rotation  # decord applies the rotation itself
    return _build_clip(frames, temporal, spec, rotation, all_views, count, used, info)


def _build_clip(frames, temporal, spec: ClipSpec, rotation, all_views, count, used, info) -> Clip:
    """Resize once, cut each view, normalise; the primary view fills the Clip's main fields."""
    import torch

    resized = resize_frames(frames, spec.resize_shorter, spec.input_size, rotation, spec.interpolation, spec.resize_to)
    height, width = resized.shape[1:3]
    crops = crop_offsets(height, width, spec.input_size, spec.crop, spec.crop_rounding)
    size, frames_per_view = spec.input_size, len(temporal[0])     # spec.num_frames, or what `choose` kept
    kept = range(len(temporal)) if all_views else [primary_view(len(temporal))]
    views, names, view_indices = [], [], []
    for crop_name, top, left in crops:                     # MMAction2's order: crops outer, clips inner
        for position, clip_index in enumerate(kept):
            stretch = resized[position * frames_per_view:(position + 1) * frames_per_view]
            view = stretch[:, top:top + size, left:left + size]
            views.append(np.ascontiguousarray(view[:, :, ::-1] if crop_name.endswith(FLIPPED) else view))
            names.append(_view_name(clip_index, len(temporal), crop_name, len(crops)))
            view_indices.append(temporal[clip_index])
    centre = [name for name, *_ in crops].index("centre")
    primary = centre * len(kept) + list(kept).index(primary_view(len(temporal)))
    _, top, left = crops[centre]
    tensors = [normalise(view, spec.mean, spec.std, spec.channel_order) for view in views]
    return Clip(
        tensor=tensors[primary],
        frames_uint8=views[primary],
        frame_indices=list(view_indices[primary]),
        num_decoded_frames=count,
        repeated=any(len(set(v)) < len(v) or v != sorted(v) for v in temporal),  # repeats, or wraps round
        decoder=used,
        info=info,
        notice=frame_count_notice(info.declared_frames, count),
        crop_box=(top / height, left / width, (top + size) / height, (left + size) / width),
        frame_size=(frames.shape[1], frames.shape[2]) if not rotation % 180 else (frames.shape[2], frames.shape[1]),
        views=torch.stack(tensors) if all_views else None,
        view_names=names if all_views else [],
        view_frame_indices=view_indices if all_views else [],
    )


def _view_name(clip_index: int, num_clips: int, crop: str, num_crops: int) -> str:
    """"clip 2, left crop", "clip 2", "left crop" or "upper left crop, flipped"; "view" when there is one."""
    place, flipped = (crop[:-len(FLIPPED)], FLIPPED) if crop.endswith(FLIPPED) else (crop, "")
    parts = ([f"clip {clip_index}"] if num_clips > 1 else []) + ([f"{place} crop{flipped}"] if num_crops > 1 else [])
    return ", ".join(parts) or "view"
