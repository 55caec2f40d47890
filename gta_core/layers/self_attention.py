"""Decoupled self-attention (paper §3.2): spatial (SA), temporal (TA), TAPE, DNL.

SA (Eq. 3) attends over the H·W positions of one frame; TA (Eq. 4) over the T
positions of one pixel. DNL is SA followed by TA, each with its own
projections. Where the paper is silent we chose:

* inner width C/4 for both SA and TA: it is the width at which R2D-50 + SA,
  + TA and + SA + TA reproduce Table 6 (27.5 M / 27.5 M / 31.2 M parameters,
  41.7 / 41.0 / 49.9 GFLOPs);
* SA pools keys and values 2×2 like NL (that FLOP count needs it); TA does not
  pool (its keys are the T frames of one pixel);
* TAPE adds a learned positional embedding over T to TA's input, initialised
  to the sinusoidal table so that a fresh TAPE is already order-aware.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from .common import AttentionSoftmax, attend, conv1x1, key_pool, zero_init_batchnorm


class QueryKeyValue(nn.Module):
    """The three 1×1 projections θ (query), φ (key), g (value) of one attention."""

    def __init__(self, channels: int, inner_channels: int) -> None:
        super().__init__()
        self.query = conv1x1(channels, inner_channels)
        self.key = conv1x1(channels, inner_channels)
        self.value = conv1x1(channels, inner_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.query(x), self.key(x), self.value(x)


class SpatialAttention(nn.Module):
    """SA, Eq. 3: Y(t) = X(t) + BN(softmax(Q(t)K(t)ᵀ/√C') V(t) W^O)."""

    def __init__(
        self, channels: int, inner_channels: int | None = None, pool_keys: bool = True, pool_first: bool = False,
        pool_ceil: bool = True,
    ) -> None:
        super().__init__()
        self.inner_channels = inner_channels or channels // 4
        self.projections = QueryKeyValue(channels, self.inner_channels)
        self.pool = key_pool(pool_keys, ceil_mode=pool_ceil)
        # Pool X before the key/value projections (PySlowFast's non-local order) instead of after.
        self.pool_first = pool_first
        self.attend = AttentionSoftmax()
        self.out = conv1x1(self.inner_channels, channels)
        self.norm = zero_init_batchnorm(channels)

    def forward(self, x: torch.Tensor, projections: QueryKeyValue | None = None) -> torch.Tensor:
        """`projections` replaces this block's own θ, φ, g (swapped DNL, paper Fig. 7)."""
        # x: (B·T, C, H, W); each frame is its own attention problem.
        height, width = x.shape[-2:]
        projections = projections or self.projections
        q = rearrange(projections.query(x), "bt c h w -> bt (h w) c")
        if self.pool_first:
            pooled = self.pool(x)
            k, v = projections.key(pooled), projections.value(pooled)
        else:
            k, v = self.pool(projections.key(x)), self.pool(projections.value(x))
        k = rearrange(k, "bt c h w -> bt (h w) c")
        v = rearrange(v, "bt c h w -> bt (h w) c")
        # softmax((B·T, H·W, C') x (B·T, C', h·w)) x (B·T, h·w, C') -> (B·T, H·W, C')
        context = attend(q, k, v, 1 / math.sqrt(self.inner_channels), self.attend)
        context = rearrange(context, "bt (h w) c -> bt c h w", h=height, w=width)
        return x + self.norm(self.out(context))


def sinusoidal_table(length: int, channels: int) -> torch.Tensor:
    """The Transformer's sin/cos position table, (length, channels)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(length, channels)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: channels // 2])
    return table


class TemporalAttention(nn.Module):
    """TA, Eq. 4: attention along T at every pixel (i, j). TAPE when `positional`."""

    def __init__(
        self,
        channels: int,
        num_frames: int,
        inner_channels: int | None = None,
        positional: bool = False,
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.inner_channels = inner_channels or channels // 4
        self.projections = QueryKeyValue(channels, self.inner_channels)
        # (T, C): one learned vector per frame index, added before the projections.
        self.positional = nn.Parameter(sinusoidal_table(num_frames, channels)) if positional else None
        self.attend = AttentionSoftmax()
        self.out = conv1x1(self.inner_channels, channels)
        self.norm = zero_init_batchnorm(channels)

    def forward(self, x: torch.Tensor, projections: QueryKeyValue | None = None) -> torch.Tensor:
        height, width = x.shape[-2:]
        frames = self.num_frames
        inputs = x
        if self.positional is not None:
            position = rearrange(self.positional, "t c -> t c 1 1")
            inputs = rearrange(
                rearrange(x, "(b t) c h w -> b t c h w", t=frames) + position,
                "b t c h w -> (b t) c h w",
            )
        q, k, v = (projections or self.projections)(inputs)
        # Every pixel becomes a sequence of T tokens: (B·H·W, T, C').
        q, k, v = (rearrange(z, "(b t) c h w -> (b h w) t c", t=frames) for z in (q, k, v))
        # softmax((B·H·W, T, C') x (B·H·W, C', T)) x (B·H·W, T, C') -> (B·H·W, T, C')
        context = attend(q, k, v, 1 / math.sqrt(self.inner_channels), self.attend)
        context = rearrange(context, "(b h w) t c -> (b t) c h w", h=height, w=width)
        return x + self.norm(self.out(context))


class DecoupledAttention(nn.Module):
    """SA then TA (or TAPE), each with its own projections (paper Fig. 2b).

    Either part can be left out, which gives the "+SA" and "+TA" rows of
    Table 6. `swap_projections` (set only for visualisation, paper Fig. 7)
    makes SA use TA's θ, φ, g and TA use SA's.
    """

    def __init__(
        self,
        channels: int,
        num_frames: int,
        spatial: bool = True,
        temporal: bool = True,
        positional: bool = False,
        spatial_pool_first: bool = False,
        spatial_pool_keys: bool = True,
        spatial_pool_ceil: bool = True,
    ) -> None:
        super().__init__()
        self.spatial = SpatialAttention(
            channels, pool_keys=spatial_pool_keys, pool_first=spatial_pool_first, pool_ceil=spatial_pool_ceil
        ) if spatial else None
        self.temporal = TemporalAttention(channels, num_frames, positional=positional) if temporal else None
        self.swap_projections = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        swap = self.swap_projections and self.spatial is not None and self.temporal is not None
        if self.spatial is not None:
            x = self.spatial(x, self.temporal.projections if swap else None)
        if self.temporal is not None:
            x = self.temporal(x, self.spatial.projections if swap else None)
        return x
