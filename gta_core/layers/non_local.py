"""The non-local block (Wang et al. 2018), embedded-Gaussian version.

This is the variant that reproduces Table 1 of the GTA paper (R2D-50 + NL:
31.2 M parameters, 61.1 GFLOPs at 8×224²): θ, φ, g are 1×1 projections
C → C/2, φ and g are max-pooled 2×2 in space *after* the projection, and the
softmax runs over all T·h·w key positions of the clip.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from .common import AttentionSoftmax, conv1x1, key_pool, zero_init_batchnorm


class NonLocalBlock(nn.Module):
    """Y = X + BN(softmax(θφᵀ/√C') g W^O), attention over all of space-time."""

    def __init__(
        self,
        channels: int,
        num_frames: int,
        inner_channels: int | None = None,
        pool_keys: bool = True,
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.inner_channels = inner_channels or channels // 2
        self.query = conv1x1(channels, self.inner_channels)   # θ
        self.key = conv1x1(channels, self.inner_channels)     # φ
        self.value = conv1x1(channels, self.inner_channels)   # g
        self.pool = key_pool(pool_keys)
        self.attend = AttentionSoftmax()
        self.out = conv1x1(self.inner_channels, channels)     # W^O
        self.norm = zero_init_batchnorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B·T, C, H, W), frames folded into the batch by the R2D backbone.
        height, width = x.shape[-2:]
        frames = self.num_frames
        q = rearrange(self.query(x), "(b t) c h w -> b (t h w) c", t=frames)
        k = rearrange(self.pool(self.key(x)), "(b t) c h w -> b (t h w) c", t=frames)
        v = rearrange(self.pool(self.value(x)), "(b t) c h w -> b (t h w) c", t=frames)
        # (B, T·H·W, C') x (B, C', T·h·w) -> (B, T·H·W, T·h·w)
        weights = self.attend(q @ k.transpose(1, 2) / math.sqrt(self.inner_channels))
        # (B, T·H·W, T·h·w) x (B, T·h·w, C') -> (B, T·H·W, C')
        context = weights @ v
        context = rearrange(context, "b (t h w) c -> (b t) c h w", t=frames, h=height, w=width)
        return x + self.norm(self.out(context))
