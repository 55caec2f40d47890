"""Interpretability beyond attention maps: attributions, order probes, knockouts.

Everything here takes a model and a clip and returns a plain dataclass of
numpy arrays; nothing imports streamlit.

    integrated_gradients(model, clip)   per-pixel input attributions (captum IG)
    grad_cam(model, clip)               Grad-CAM on the last stage, per frame (captum)
    frame_occlusion(model, clip)        the score drop when frame t is replaced
    order_probe(models, clips)          original / reversed / shuffled frame order
    knockout(model, clip, components)   zero a GTA head, group, region, branch or block

Thread safety. Every function works on a *private copy* of the model
(`private_copy`: `copy.deepcopy`, eval mode, parameters without gradients,
swapped projections off, no hooks); captum's hooks and the knockouts' edits
live on that copy only, and the model passed in is only read. A caller that
shares a model between threads needs no lock for these functions beyond what
keeps the model from being *written* while it is copied (the app takes its
model lock around the call, as for captures). `knocked_out` is the one
exception: it edits the module it is given (and restores it on exit, also on
error), so call it on a private copy or under a lock.

Scores. The score of a class is its logit (the pre-softmax output of the TSN
consensus), the quantity Integrated Gradients is complete for; probabilities
are reported beside it where a person reads them. All runs are in eval mode
(BatchNorm running statistics, no dropout).

Clips are (3, T, H, W) or (1, 3, T, H, W) tensors, normalised as the
checkpoint's config says (what `gta_core.video.read_clip` returns).

Attributions, frame occlusion and the order probe live here; the knockouts in
`knockouts.py`, whose names this package re-exports (at the bottom: they use
the helpers below).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ..models import VideoNet, VideoNetConfig

ORDERS = ("original", "reversed", "shuffled")


# --------------------------------------------------------------------------- helpers


def private_copy(model: VideoNet) -> VideoNet:
    """A deep copy of `model` for interpretation: eval mode, no parameter gradients, no hooks.

    DNL's `swap_projections` flags are switched off in the copy (a copy taken
    while another thread captures swapped attention would otherwise inherit
    them), and any forward hooks the copy inherited (another thread's capture
    recorder) are dropped: they belong to someone else's run.
    """
    clone = copy.deepcopy(model).eval()
    clone.requires_grad_(False)
    for module in clone.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
        if getattr(module, "swap_projections", False):    # a DNL block (layers.AttentionBlock)
            module.swap_projections = False
    return clone


def has_hooks(model: nn.Module) -> bool:
    """Whether any module of `model` carries a forward, pre-forward or backward hook."""
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None)
        for m in model.modules()
    )


def _as_batch(model: VideoNet, clip: torch.Tensor) -> torch.Tensor:
    """(3, T, H, W) or (1, 3, T, H, W) -> (1, 3, T, H, W) float32 on the model's device."""
    if clip.dim() == 4:
        clip = clip[None]
    if clip.dim() != 5 or clip.shape[0] != 1 or clip.shape[1] != 3:
        raise ValueError(f"expected one clip of shape (3, T, H, W) or (1, 3, T, H, W), got {tuple(clip.shape)}")
    device = next(model.parameters()).device
    return clip.detach().to(device=device, dtype=torch.float32)


def _logits(model: VideoNet, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(batch).float()


def _target(logits: torch.Tensor, target: int | None) -> int:
    classes = logits.shape[-1]
    if target is None:
        return int(logits[0].argmax())
    if not 0 <= int(target) < classes:
        raise ValueError(f"target class {target} is outside 0..{classes - 1}")
    return int(target)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy()


# --------------------------------------------------------------------------- attributions


@dataclass
class Attribution:
    """Attributions of one class score to one clip.

    `maps` are per frame: for Integrated Gradients the per-pixel attribution
    summed over RGB, on the input grid (T, H, W); for Grad-CAM the class
    activation map on the last stage's grid (T, h, w), before the ReLU (draw
    `positive_maps`). `per_frame` is the signed sum of `maps` over each frame
    (T,): for IG it sums to `score - baseline_score` up to `delta`; for Grad-CAM
    it is each frame's contribution to `score - bias` (see `grad_cam`).
    """

    method: str                 # "integrated_gradients" or "grad_cam"
    target: int
    score: float                # logit of `target` on the clip
    maps: np.ndarray
    per_frame: np.ndarray       # (T,) signed
    baseline_score: float | None = None   # IG: logit of `target` on the baseline
    delta: float | None = None            # IG: Σ attributions − (score − baseline_score)
    steps: int | None = None

    @property
    def positive_maps(self) -> np.ndarray:
        return np.maximum(self.maps, 0.0)

    @property
    def mass(self) -> np.ndarray:
        """(T,) share of the absolute attribution held by each frame; sums to 1 (the temporal importance curve)."""
        absolute = np.abs(self.maps).reshape(self.maps.shape[0], -1).sum(axis=1)
        total = absolute.sum()
        return absolute / total if total > 0 else np.full_like(absolute, 1.0 / len(absolute))


def baseline_for(clip: torch.Tensor, kind: str = "mean", mean=None, std=None) -> torch.Tensor:
    """An IG baseline for a normalised clip.

    "mean": all zeros, i.e. every pixel at the normalisation mean (a flat
    grey-ish clip; the usual choice for ImageNet-normalised inputs).
    "black": pixel value 0, i.e. (0 − mean) / std per channel; needs mean and std.
    """
    if kind == "mean":
        return torch.zeros_like(clip)
    if kind == "black":
        if mean is None or std is None:
            raise ValueError("a black baseline needs the clip's normalisation mean and std")
        shape = (1, 3) + (1,) * (clip.dim() - 2)
        mean_t = torch.as_tensor(mean, dtype=clip.dtype, device=clip.device).reshape(shape)
        std_t = torch.as_tensor(std, dtype=clip.dtype, device=clip.device).reshape(shape)
        return ((0.0 - mean_t) / std_t).expand_as(clip).clone()
    raise ValueError(f"unknown baseline {kind!r}; choose 'mean' or 'black'")


def integrated_gradients(
    model: VideoNet,
    clip: torch.Tensor,
    target: int | None = None,
    steps: int = 32,
    internal_batch_size: int = 8,
    baseline: torch.Tensor | str = "mean",
    method: str = "gausslegendre",
) -> Attribution:
    """Integrated Gradients (Sundararajan et al. 2017) of a class logit w.r.t. the input clip.

    target None: the predicted class. `internal_batch_size` is the number of
    interpolated clips per forward/backward (each clip is T frames, so the
    backbone sees internal_batch_size·T images at once): memory stays bounded
    by it, not by `steps`. Runs on a private copy (captum adds no hooks for IG,
    but the copy keeps the caller's model untouched all the same).

    Completeness: Σ maps = score − baseline_score + delta; `delta` shrinks
    with `steps` (Gauss–Legendre quadrature by default, captum's default).
    """
    from captum.attr import IntegratedGradients

    private = private_copy(model)
    batch = _as_batch(private, clip)
    base = baseline_for(batch, baseline) if isinstance(baseline, str) else baseline.to(batch).reshape(batch.shape)
    both = _logits(private, torch.cat([batch, base]))
    target = _target(both[:1], target)
    attributions, delta = IntegratedGradients(private).attribute(
        batch, baselines=base, target=target, n_steps=steps, method=method,
        internal_batch_size=max(1, internal_batch_size), return_convergence_delta=True,
    )
    maps = attributions[0].sum(dim=0)                       # (3, T, H, W) -> (T, H, W)
    return Attribution(
        method="integrated_gradients",
        target=target,
        score=float(both[0, target]),
        maps=_numpy(maps),
        per_frame=_numpy(maps.sum(dim=(1, 2))),
        baseline_score=float(both[1, target]),
        delta=float(delta[0]),
        steps=steps,
    )


def grad_cam(model: VideoNet, clip: torch.Tensor, target: int | None = None, layer: str | None = None) -> Attribution:
    """Grad-CAM (Selvaraju et al. 2017) on the output of a backbone stage, one map per frame.

    The R2D backbone folds frames into the batch, so the stage's output is
    (T, C, h, w) for one clip and captum's LayerGradCam gives one (h, w) map
    per frame. The maps are kept *before* the ReLU (the paper's ReLU is
    applied for display, `positive_maps`) so that they stay additive: on the
    last stage, with TSN's average consensus and a linear head after global
    pooling, the maps summed over frames and pixels equal the class logit minus
    the head's bias exactly, and `per_frame[t]` is frame t's share of it.
    A 3D stage gives one map per time step (I3D: 8 frames a step; SlowFast:
    its Slow pathway's last stage, 4 frames a step); each step's map is
    spread evenly over the frames it stands for, so sums are kept (on SlowFast
    they add up to the Slow pathway's share of the logit, not all of it).
    S3D: its `features` output, 8 frames a step; its head pools 2×7×7 windows
    at stride 1, a global mean only on a last map no larger (16×224² and
    smaller); on larger clips the sums are what a global-mean head would give.
    The layer hook lives on a private copy and is removed by captum.
    """
    from captum.attr import LayerGradCam

    private = private_copy(model)
    batch = _as_batch(private, clip)
    logits = _logits(private, batch)
    target = _target(logits, target)
    if private.config.backbone in ("timesformer", "mvit"):
        maps = _token_grad_cam(private, batch, target)
        return Attribution("grad_cam", target, float(logits[0, target]), _numpy(maps), _numpy(maps.sum(dim=(1, 2))))
    layer = layer or _last_stage(private)
    stage = getattr(private.backbone, layer)
    with torch.enable_grad():
        cams = LayerGradCam(private, stage).attribute(batch, target=target, relu_attributions=False)
    if private.is_3d:
        maps = _spread_over_frames(cams[0, 0], private.time_spans(f"{layer.replace('_', '.')}.0"))
    else:
        maps = cams[:, 0]                                    # (T, 1, h, w) -> (T, h, w)
    return Attribution(
        method="grad_cam",
        target=target,
        score=float(logits[0, target]),
        maps=_numpy(maps),
        per_frame=_numpy(maps.sum(dim=(1, 2))),
    )


def _token_grad_cam(model: VideoNet, batch: torch.Tensor, target: int) -> torch.Tensor:
    """TimeSformer and MViT: Grad-CAM on the patch tokens entering the last layer, (T, h, w) before the ReLU.

    (The classifier reads only the CLS token, so the last layer's own patch
    outputs have no gradient; its input patches reach the CLS through its attention.)
    Channel weights are the target logit's gradient averaged over all patch
    tokens of the clip; a token's map value is its features weighted by them.
    MViT's tokens (CLS first, then T'·h·w) are steps of 2 frames: each step's map is spread over its frames.
    """
    mvit = model.config.backbone == "mvit"
    last, seen = (model.backbone.blocks if mvit else model.backbone.layers)[-1], {}

    def keep(module, args):
        tokens = args[0] if mvit else args[1]               # MViT (1, 1 + T'·h·w, C); TimeSformer (1, T, h·w, C)
        tokens.retain_grad()
        seen.update(tokens=tokens, grid=args[1] if mvit else args[2])

    handle = last.register_forward_pre_hook(keep)
    try:
        with torch.enable_grad():
            model(batch.clone().requires_grad_(True))[0, target].backward()
    finally:
        handle.remove()
    tokens, gradient = seen["tokens"], seen["tokens"].grad
    if mvit:
        tokens, gradient = tokens[:, 1:], gradient[:, 1:]
    weights = gradient.mean(dim=tuple(range(1, gradient.dim() - 1)), keepdim=True)     # (1, ..., C)
    maps = (tokens * weights).sum(dim=-1)[0].detach()
    if mvit:
        steps, height, width = seen["grid"]
        return _spread_over_frames(maps.reshape(steps, height, width), model.time_spans("blocks.0"))
    return rearrange(maps, "t (h w) -> t h w", h=seen["grid"][0])


def _last_stage(model: VideoNet) -> str:
    return {"slowfast": "slow_res5", "video_resnet": "layer4", "s3d": "features"}.get(model.config.backbone, "res5")


def _spread_over_frames(step_maps: torch.Tensor, spans) -> torch.Tensor:
    """(T', h, w) maps of time steps -> (T, h, w): each step's map / its frame count on each of its frames."""
    return torch.cat([step_maps[i : i + 1].expand(stop - start, -1, -1) / (stop - start) for i, (start, stop) in enumerate(spans)])


# --------------------------------------------------------------------------- frame occlusion


@dataclass
class FrameOcclusion:
    """The class score with each frame replaced in turn (score drop per frame)."""

    target: int
    fill: str                       # "neighbours" or "mean"
    score: float                    # logit of `target` on the clip
    probability: float              # its softmax probability
    occluded_scores: np.ndarray     # (T,) logit with frame t replaced
    occluded_probabilities: np.ndarray  # (T,)

    @property
    def drop(self) -> np.ndarray:
        """(T,) logit drop: positive where frame t supported the class."""
        return self.score - self.occluded_scores

    @property
    def probability_drop(self) -> np.ndarray:
        return self.probability - self.occluded_probabilities


def occlude_frames(batch: torch.Tensor, fill: str = "neighbours") -> torch.Tensor:
    """(1, 3, T, H, W) -> (T, 3, T, H, W): clip t has frame t replaced.

    "neighbours": the mean of frames t−1 and t+1 (the one neighbour at either
    end), what a frame would look like if it carried nothing of its own.
    "mean": the mean frame of the clip over T.
    """
    frames = batch.shape[2]
    if frames < 2:
        raise ValueError("frame occlusion needs at least 2 frames")
    clip = batch[0]                                          # (3, T, H, W)
    if fill == "mean":
        fills = clip.mean(dim=1, keepdim=True).expand_as(clip)
    elif fill == "neighbours":
        previous = torch.cat([clip[:, 1:2], clip[:, :-1]], dim=1)   # frame t−1 (t=0: frame 1)
        following = torch.cat([clip[:, 1:], clip[:, -2:-1]], dim=1)  # frame t+1 (t=T−1: frame T−2)
        fills = (previous + following) / 2
    else:
        raise ValueError(f"unknown fill {fill!r}; choose 'neighbours' or 'mean'")
    occluded = clip[None].repeat(frames, 1, 1, 1, 1)        # (T, 3, T, H, W)
    index = torch.arange(frames)
    occluded[index, :, index] = rearrange(fills, "c t h w -> t c h w")
    return occluded


def frame_occlusion(
    model: VideoNet, clip: torch.Tensor, target: int | None = None, fill: str = "neighbours", batch_size: int = 4
) -> FrameOcclusion:
    """Replace frame t (every t) and measure the class score; `batch_size` clips per forward."""
    private = private_copy(model)
    batch = _as_batch(private, clip)
    logits = _logits(private, batch)
    target = _target(logits, target)
    occluded = occlude_frames(batch, fill)
    scores = torch.cat([_logits(private, chunk) for chunk in occluded.split(max(1, batch_size))])
    probs = scores.softmax(dim=-1)
    return FrameOcclusion(
        target=target,
        fill=fill,
        score=float(logits[0, target]),
        probability=float(logits[0].softmax(dim=-1)[target]),
        occluded_scores=_numpy(scores[:, target]),
        occluded_probabilities=_numpy(probs[:, target]),
    )


# --------------------------------------------------------------------------- order probe


def frame_orders(num_frames: int, seed: int = 0) -> dict[str, list[int]]:
    """The three orders: original, reversed, and a seeded shuffle that is neither of the others (T ≥ 3)."""
    original = list(range(num_frames))
    generator = np.random.default_rng(seed)
    shuffled = original
    if num_frames >= 3:
        while shuffled in (original, original[::-1]):
            shuffled = generator.permutation(num_frames).tolist()
    return {"original": original, "reversed": original[::-1], "shuffled": shuffled}


@dataclass
class OrderProbe:
    """One model on the same frames in three orders (rows of every array follow ORDERS)."""

    orders: dict[str, list[int]]    # order name -> frame permutation
    logits: np.ndarray              # (3, num_classes)
    probabilities: np.ndarray       # (3, num_classes)
    target: int                     # top-1 class on the original order

    @property
    def top1(self) -> list[int]:
        return [int(i) for i in self.logits.argmax(axis=1)]

    @property
    def target_scores(self) -> np.ndarray:
        """(3,) logit of the original top-1 class in each order."""
        return self.logits[:, self.target]

    @property
    def target_probabilities(self) -> np.ndarray:
        return self.probabilities[:, self.target]

    def score_change(self, order: str) -> float:
        """Logit change of the original top-1 class under `order`."""
        return float(self.target_scores[ORDERS.index(order)] - self.target_scores[0])

    def max_logit_change(self, order: str) -> float:
        """Largest |Δ logit| over all classes under `order` (0 for an order-invariant model)."""
        return float(np.abs(self.logits[ORDERS.index(order)] - self.logits[0]).max())

    def top1_changed(self, order: str) -> bool:
        return self.top1[ORDERS.index(order)] != self.top1[0]


def order_sensitivity(config: VideoNetConfig) -> tuple[bool, str]:
    """(can the model tell frame orders apart, why), from its architecture alone.

    The facts tests/test_order_sensitivity.py checks for every backbone, with
    the probe the app runs: per-frame 2D convolutions, average consensus and
    attention without positions (R2D, + NL, + SA, + TA, + DNL) give the same
    logits for any order of the same frames; a positional table (TAPE),
    learned T×T matrices (GTA), the TSM shift, 3D temporal convolutions and
    TimeSformer's time embedding do not.
    """
    if config.backbone == "i3d":
        return True, "its inflated 3×1×1 and 5×7×7 temporal convolutions and temporal strides see frame order"
    if config.backbone == "slowfast":
        return True, (f"its temporal convolutions, the Slow pathway's sampling of every {config.slowfast_alpha}th frame "
                      "and the time-strided laterals see frame order")
    if config.backbone == "video_resnet":
        kernels = "3×1×1 halves of its (2+1)D" if config.video_resnet == "r2plus1d_18" else "3×3×3"
        return True, f"its {kernels} temporal convolutions see frame order"
    if config.backbone == "timesformer":
        return True, "a learned time embedding is added to each frame's patches"
    if config.backbone == "mvit":
        return True, ("its 3×7×7 patch embedding, 3×3×3 query / key pooling and relative time positions in "
                      "every layer see frame order")
    if config.backbone == "s3d":
        return True, "its 7×1×1 and 3×1×1 temporal convolutions, 3×3×3 max-pools and temporal strides see frame order"
    if config.tsm:
        return True, "TSM shifts channels between neighbouring frames"
    if config.block == "tape":
        return True, "TAPE adds a learned position per frame"
    if config.block == "gta":
        return True, "GTA's learned T×T matrices weigh frames by position"
    return False, "per-frame convolutions, average consensus and attention without positions ignore frame order"


def order_probe_one(model: VideoNet, clip: torch.Tensor, seed: int = 0) -> OrderProbe:
    """Logits of one model on the clip in original, reversed and shuffled frame order (one forward)."""
    private = private_copy(model)
    batch = _as_batch(private, clip)
    orders = frame_orders(batch.shape[2], seed)
    permuted = torch.cat([batch[:, :, order] for order in orders.values()])   # (3, 3, T, H, W)
    logits = _logits(private, permuted)
    return OrderProbe(
        orders=orders,
        logits=_numpy(logits),
        probabilities=_numpy(logits.softmax(dim=-1)),
        target=int(logits[0].argmax()),
    )


def order_probe(
    models: Mapping[str, VideoNet], clips: torch.Tensor | Mapping[str, torch.Tensor], seed: int = 0
) -> dict[str, OrderProbe]:
    """`order_probe_one` for every model; `clips` is one clip or one per model name (own sampling/size)."""
    return {
        name: order_probe_one(model, clips[name] if isinstance(clips, Mapping) else clips, seed)
        for name, model in models.items()
    }


from .knockouts import (  # noqa: E402  (knockouts.py uses the helpers above)
    KNOCKOUT_PARTS,
    Component,
    KnockoutResult,
    knocked_out,
    knockout,
    knockout_components,
)

__all__ = [
    "KNOCKOUT_PARTS", "ORDERS", "Attribution", "Component", "FrameOcclusion", "KnockoutResult", "OrderProbe",
    "baseline_for", "frame_occlusion", "frame_orders", "grad_cam", "has_hooks", "integrated_gradients",
    "knocked_out", "knockout", "knockout_components", "occlude_frames", "order_probe", "order_probe_one",
    "order_sensitivity", "private_copy",
]
