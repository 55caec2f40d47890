"""A query's footprint in the input: which frames and pixels the block-input feature at (t, y, x) depends on.

A block's query (t, y, x) is a feature of the block's input, and on a 3D model
(or R2D with TSM) that feature already mixes many input frames: I3D's
temporal kernels and strides widen a res4 step far beyond the 8 frames it
"stands for" (`time_spans`). The footprint is the effective receptive field by
gradient (Luo et al. 2016): |∂ Σ_c f_c(t, y, x) / ∂ clip|, summed over the
colour channels, from one backward pass. A frame or pixel outside the
receptive field gets exactly 0, so the support is exact under the temporal
kernels and strides (a pixel inside it could read 0 only where every path is
cut, e.g. by ReLUs); the magnitudes are the usual ERF: how strongly a pixel
moves the feature, for this clip, at these weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class Footprint:
    weights: np.ndarray                 # (T, H, W): |gradient| summed over colour, over the clip's frames and pixels
    frames: tuple[int, int]             # [first, stop) input frames with a non-zero gradient
    nominal_frames: tuple[int, int]     # [start, stop) frames the query's step stands for (time_spans)
    cell: tuple[int, int]               # the query's (y, x) on the block's feature grid
    grid: tuple[int, int]               # that grid (H', W')

    @property
    def frame_mass(self) -> np.ndarray:
        """(T,) each frame's share of the total |gradient|."""
        mass = self.weights.sum(axis=(1, 2))
        return mass / mass.sum() if mass.sum() > 0 else mass


class _Reached(Exception):
    """Raised by the hook once the block's input exists: nothing after the block needs to run."""


def block_input(model: nn.Module, clip: torch.Tensor, block: str) -> torch.Tensor:
    """The input (B·T', C, H', W') of block `block` for `clip`, inside the autograd graph of `clip`."""
    target = model.temporal_blocks()[block]
    seen = {}

    def hook(module, args):
        seen["input"] = args[0]
        raise _Reached

    handle = target.register_forward_pre_hook(hook)
    try:
        model(clip)
    except _Reached:
        pass
    finally:
        handle.remove()
    return seen["input"]


def footprint(model: nn.Module, clip: torch.Tensor, block: str, t: int, y: int, x: int) -> Footprint:
    """The footprint of query (step t, y, x) of `block` in `clip` (1, 3, T, H, W); the model is left unchanged."""
    if clip.dim() != 5 or clip.shape[0] != 1:
        raise ValueError(f"footprint needs one clip (1, 3, T, H, W), got {tuple(clip.shape)}")
    blocks = model.temporal_blocks()
    if block not in blocks:
        raise ValueError(f"no block {block!r}; the model's blocks are {', '.join(blocks)}")
    spans = model.time_spans(block)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            clip = clip.detach().clone().requires_grad_(True)
            feature = block_input(model, clip, block)              # (T', C, H', W') for one clip
            height, width = feature.shape[-2:]
            if not (0 <= t < len(spans) and 0 <= y < height and 0 <= x < width):
                raise ValueError(f"query ({t}, {y}, {x}) is outside {block}'s {len(spans)}×{height}×{width} grid")
            (gradient,) = torch.autograd.grad(feature[t, :, y, x].sum(), clip)
    finally:
        model.train(was_training)
    weights = gradient[0].abs().sum(dim=0).float().cpu().numpy()                 # (T, H, W)
    touched = np.flatnonzero(weights.reshape(weights.shape[0], -1).max(axis=1) > 0)
    frames = (int(touched[0]), int(touched[-1]) + 1) if touched.size else (0, 0)
    return Footprint(weights, frames, spans[t], (y, x), (height, width))
