"""The one-call entry points: a video file in, predictions or attention records out.

    from gta_core import predict, lens
    print(predict("checkpoints/temporal_r2d18_gta", "clip.webm"))   # top-5 with class names
    seen = lens("checkpoints/temporal_r2d18_gta", "clip.webm")      # a Capture: logits + a record per block

Each accepts a checkpoint folder, a loaded `Checkpoint`, or a bare model from
`create_model` (then the clip is read at the model's own num_frames and
input_size with ImageNet normalisation, and classes are named by index). The
video is read exactly as the checkpoint's config says (`read_clip` with the
checkpoint's `ClipSpec`) and, unless it is one of the project's bundled files,
probed in a child process first, so a hostile file costs a `VideoError`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import Checkpoint, load_checkpoint
from .models import VideoNet
from .records import Capture, capture
from .video import Clip, ClipSpec, read_clip

ModelSource = str | os.PathLike | Checkpoint | VideoNet


@dataclass(frozen=True)
class ClassScore:
    rank: int            # 1 = most probable
    name: str
    index: int
    probability: float
    logit: float


@dataclass(frozen=True)
class ViewScore:
    name: str                # "clip 2, left crop", or "view" when the config tests one view
    frame_indices: list[int]
    top1: str


@dataclass
class Prediction:
    """The top-k classes of one video under one model, and the frames it saw.

    Every test view the checkpoint's config names (num_clips, twice_sample, ThreeCrop) is run and the
    views are averaged as its `average_views` says, as the source (e.g. MMAction2's test) does.
    """

    video: str
    model: str                          # checkpoint folder, or the class name of a bare model
    top: list[ClassScore]
    view_logits: torch.Tensor           # (V, num_classes) on the CPU, one row per test view
    scores: torch.Tensor                # (num_classes,): the averaged softmax ("prob") or mean logit ("score")
    average_views: str                  # how the views were averaged
    frame_indices: list[int]            # which decoded frames made the primary view
    num_decoded_frames: int
    views: list[ViewScore]
    notice: str | None = None           # e.g. "the file declares 90 frames; 45 could be decoded"

    @property
    def logits(self) -> torch.Tensor:
        """(num_classes,): the mean logit over the views (the logits themselves for one view)."""
        return self.view_logits.mean(dim=0)

    @property
    def best(self) -> ClassScore:
        return self.top[0]

    def __str__(self) -> str:
        lines = [f"{Path(self.video).name} under {self.model}:"]
        lines += [f"{s.rank:>3}. {100 * s.probability:6.2f}%  {s.name}" for s in self.top]
        return "\n".join(lines)


def resolve(source: ModelSource, device: str | torch.device = "cpu") -> tuple[VideoNet, ClipSpec, list[str], str]:
    """(model in eval mode, how to read its clips, class names, display name) from any ModelSource."""
    if isinstance(source, VideoNet):
        cfg = source.config
        spec = ClipSpec(num_frames=cfg.num_frames, input_size=cfg.input_size, resize_shorter=max(256, cfg.input_size))
        names = [f"class {i}" for i in range(cfg.num_classes)]
        return source.eval(), spec, names, type(source).__name__
    checkpoint = source if isinstance(source, Checkpoint) else load_checkpoint(source, device=device)
    spec = checkpoint.config.clip_spec()
    return checkpoint.model.eval(), spec, checkpoint.config.class_names, checkpoint.path.name


def _is_bundled(video: Path) -> bool:
    from .bundle import assets_dir

    try:
        video.resolve().relative_to(assets_dir().resolve())
        return True
    except ValueError:
        return False


def load_clip(video: str | os.PathLike, spec: ClipSpec, decoder: str = "auto", all_views: bool = False) -> Clip:
    """The test-mode clip of `video`; files from outside the project are probed in a child first."""
    path = Path(video)
    return read_clip(path, spec, train=False, decoder=decoder, untrusted=not _is_bundled(path), all_views=all_views)


def predict(
    source: ModelSource, video: str | os.PathLike, *, topk: int = 5, device: str = "cpu", decoder: str = "auto"
) -> Prediction:
    """Top-`topk` classes (with names and probabilities) of `video` under a checkpoint or model."""
    from .evaluate import VIEWS_PER_FORWARD, average_views

    model, spec, names, label = resolve(source, device)
    clip = load_clip(video, spec, decoder, all_views=True)
    model_device = next(model.parameters()).device
    with torch.inference_mode():
        view_logits = torch.cat([model(chunk.to(model_device)).float().cpu()
                                 for chunk in clip.views.split(VIEWS_PER_FORWARD)])      # (V, K)
    averaged = average_views(view_logits, spec.average_views)
    probs = averaged.softmax(dim=0)
    values, indices = probs.topk(min(topk, probs.numel()))
    top = [
        ClassScore(rank + 1, names[i], int(i), float(p), float(view_logits[:, i].mean()))
        for rank, (p, i) in enumerate(zip(values.tolist(), indices.tolist()))
    ]
    views = [ViewScore(name, list(frames), names[int(row.argmax())])
             for name, frames, row in zip(clip.view_names, clip.view_frame_indices, view_logits)]
    return Prediction(
        video=str(video), model=label, top=top, view_logits=view_logits,
        scores=averaged if spec.average_views == "score" else probs, average_views=spec.average_views,
        frame_indices=list(clip.frame_indices), num_decoded_frames=clip.num_decoded_frames, views=views,
        notice=clip.notice,
    )


def lens(
    source: ModelSource, video: str | os.PathLike, *, device: str = "cpu", swap_projections: bool = False
) -> Capture:
    """Read `video` as the checkpoint says and run the model once under `capture`: logits + a record per block.

    The frames themselves (to draw maps on) are `load_clip(video, spec).frames_uint8`.
    """
    model, spec, _, _ = resolve(source, device)
    clip = load_clip(video, spec)
    model_device = next(model.parameters()).device
    return capture(model, clip.tensor.unsqueeze(0).to(model_device), swap_projections=swap_projections)


def compare(
    checkpoints: list[str | os.PathLike],
    data: str | os.PathLike,
    *,
    split: str = "validation",
    batch_size: int = 16,
    cache_dir: str | os.PathLike | None = None,
) -> dict:
    """Several checkpoints on a dataset split (SSv2 layout), clip by clip: the `compare` command's report.

    The report (a JSON-able dict) gives per checkpoint top-1/top-5 and per-class
    accuracy, per pair the clips only one gets right, time-reversal confusions
    and class-level temporal statistics. Cached on disk (see gta_core.comparison)
    when `cache_dir` is given.
    """
    from .comparison import CompareRequest, compare_cached

    request = CompareRequest(tuple(str(c) for c in checkpoints), str(data), split, batch_size)
    report, _ = compare_cached(request, None if cache_dir is None else Path(cache_dir))
    return report
