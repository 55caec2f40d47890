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

import contextlib
import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from .attention_maps import DependencePart, FrameSpans, Recorder, SpatialMaps, TemporalMaps
from .common import AttentionSoftmax, attend, conv1x1, key_pool, pooled_grid, pooled_spans, zero_init_batchnorm
from .protocol import AttentionBlock, BlockRecord, KnockoutPart, bypass, register_block


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
        self.softmax = AttentionSoftmax()
        self.out = conv1x1(self.inner_channels, channels)
        self.norm = zero_init_batchnorm(channels)

    def forward(self, x: torch.Tensor, projections: QueryKeyValue | None = None) -> torch.Tensor:
        """`projections` replaces this block's own θ, φ, g (swapped DNL, paper Fig. 7)."""
        # x: (B·T', C, H, W); each time step is its own attention problem.
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
        context = attend(q, k, v, 1 / math.sqrt(self.inner_channels), self.softmax)
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
        num_steps: int,
        inner_channels: int | None = None,
        positional: bool = False,
    ) -> None:
        super().__init__()
        self.num_steps = num_steps      # T': the sequence length at every pixel
        self.inner_channels = inner_channels or channels // 4
        self.projections = QueryKeyValue(channels, self.inner_channels)
        # (T, C): one learned vector per frame index, added before the projections.
        self.positional = nn.Parameter(sinusoidal_table(num_steps, channels)) if positional else None
        self.softmax = AttentionSoftmax()
        self.out = conv1x1(self.inner_channels, channels)
        self.norm = zero_init_batchnorm(channels)

    def forward(self, x: torch.Tensor, projections: QueryKeyValue | None = None) -> torch.Tensor:
        height, width = x.shape[-2:]
        steps = self.num_steps
        inputs = x
        if self.positional is not None:
            position = rearrange(self.positional, "t c -> t c 1 1")
            inputs = rearrange(
                rearrange(x, "(b t) c h w -> b t c h w", t=steps) + position,
                "b t c h w -> (b t) c h w",
            )
        q, k, v = (projections or self.projections)(inputs)
        # Every pixel becomes a sequence of T tokens: (B·H·W, T, C').
        q, k, v = (rearrange(z, "(b t) c h w -> (b h w) t c", t=steps) for z in (q, k, v))
        # softmax((B·H·W, T, C') x (B·H·W, C', T)) x (B·H·W, T, C') -> (B·H·W, T, C')
        context = attend(q, k, v, 1 / math.sqrt(self.inner_channels), self.softmax)
        context = rearrange(context, "(b h w) t c -> (b t) c h w", h=height, w=width)
        return x + self.norm(self.out(context))


def spatial_maps(part: SpatialAttention, recorder: Recorder, steps: int) -> SpatialMaps:
    """The SA record of `part` (watched with `watch_part`), for a block of `steps` time steps."""
    height, width = recorder.input_shapes[part][-2:]
    spans = (pooled_spans(part.pool, height), pooled_spans(part.pool, width))
    return SpatialMaps(recorder.rows(part.softmax), steps, (height, width), pooled_grid(part.pool, height, width), spans)


def watch_part(part: SpatialAttention | TemporalAttention, recorder: Recorder) -> None:
    recorder.watch_input(part)
    recorder.watch_rows(part.softmax)


def decoupled_kind(block: DecoupledAttention) -> str:
    """One of "sa", "ta", "tape" (TA with its positional embedding), "dnl" (SA then TA), "sa+tape"."""
    temporal = None if block.temporal is None else "tape" if block.temporal.positional is not None else "ta"
    if block.spatial is None:
        if temporal is None:
            raise ValueError("a DecoupledAttention block without SA and without TA")
        return temporal
    return {None: "sa", "ta": "dnl", "tape": "sa+tape"}[temporal]


@dataclass
class DecoupledRecord(BlockRecord):
    """SA, TA, SA+TA (DNL) or SA+TAPE blocks."""

    name: str
    spatial: SpatialMaps | None
    temporal: TemporalMaps | None
    positional: bool               # TAPE
    swapped: bool                  # captured with swapped projections (Fig. 7)
    kind: str                      # decoupled_kind(): "sa", "ta", "tape", "dnl" or "sa+tape"
    frame_spans: FrameSpans = ()

    @property
    def swappable(self) -> bool:
        """SA and TA (or TAPE) both present: what `capture(..., swap_projections=True)` changes (Fig. 7)."""
        return self.spatial is not None and self.temporal is not None

    @property
    def num_steps(self) -> int:
        return self.spatial.num_steps if self.spatial is not None else self.temporal.pixel_mean.shape[-1]

    def query_grid(self) -> tuple[int, int]:
        # TA's grid is the block's input grid, the same as SA's.
        return self.spatial.grid if self.spatial is not None else self.temporal.grid

    def query_slices(self, step: int, y: int, x: int, batch: int = 0) -> dict:
        out = {}
        if self.spatial is not None:
            out.update(spatial=self.spatial.map_at(step, y, x, batch), key_grid=self.spatial.key_grid,
                       key_spans=self.spatial.key_spans)
        if self.temporal is not None:
            out["temporal"] = self.temporal.weights_at(step, y, x, batch)
        return out

    def temporal_matrices(self, batch: int = 0) -> dict[str, torch.Tensor]:
        if self.temporal is None:
            return {}
        label = "TAPE mean over pixels" if self.positional else "TA mean over pixels"
        return {label: self.temporal.mean_matrix(batch)}

    def clip_matrix(self) -> torch.Tensor | None:
        return None if self.temporal is None else self.temporal.pixel_mean.float()

    def query_dependence(self, batch: int = 0) -> dict[str, DependencePart]:
        parts = {}
        if self.spatial is not None:
            parts["SA"] = DependencePart(self.spatial.problems(batch))
        if self.temporal is not None:
            parts["TAPE" if self.positional else "TA"] = DependencePart(self.temporal.problems(batch))
        return parts


class DecoupledAttention(AttentionBlock):
    """SA then TA (or TAPE), each with its own projections (paper Fig. 2b).

    "DNL" in this code base is this block with both parts: the paper's
    *decoupled* non-local (SA → TA, §3.2), not the Disentangled Non-Local
    network of Yin et al. 2020.

    Either part can be left out, which gives the "+SA" and "+TA" rows of
    Table 6. `swap_projections` (set only for visualisation, paper Fig. 7)
    makes SA use TA's θ, φ, g and TA use SA's.
    """

    paper_reference = "GTA paper §3.2, Eq. 3 (SA) and Eq. 4 (TA), Fig. 2b; Table 6"

    def __init__(
        self,
        channels: int,
        num_steps: int,
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
        self.temporal = TemporalAttention(channels, num_steps, positional=positional) if temporal else None
        self.swap_projections = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        swap = self.swap_projections and self.spatial is not None and self.temporal is not None
        if self.spatial is not None:
            x = self.spatial(x, self.temporal.projections if swap else None)
        if self.temporal is not None:
            x = self.temporal(x, self.spatial.projections if swap else None)
        return x

    @property
    def kind(self) -> str:
        return decoupled_kind(self)

    @property
    def display_name(self) -> str:
        return self.kind.upper()

    @property
    def can_swap_projections(self) -> bool:
        return self.spatial is not None and self.temporal is not None

    @property
    def compare_label(self) -> str | None:
        return self.display_name if self.temporal is not None else None

    def query_dependence_parts(self) -> list[str]:
        labels = ["SA"] if self.spatial is not None else []
        if self.temporal is not None:
            labels.append("TAPE" if self.temporal.positional is not None else "TA")
        return labels

    def watch(self, recorder: Recorder) -> None:
        for part in (self.spatial, self.temporal):
            if part is not None:
                watch_part(part, recorder)

    def make_record(self, recorder: Recorder, name: str, batch: int, spans: FrameSpans, swapped: bool) -> DecoupledRecord:
        temporal = None
        if self.temporal is not None:
            temporal = TemporalMaps.from_rows(recorder.rows(self.temporal.softmax), recorder.input_shapes[self.temporal][-2:])
        return DecoupledRecord(
            name,
            spatial=spatial_maps(self.spatial, recorder, len(spans)) if self.spatial is not None else None,
            temporal=temporal,
            positional=self.temporal is not None and self.temporal.positional is not None,
            swapped=swapped and self.can_swap_projections,
            kind=self.kind,
            frame_spans=spans,
        )

    def knockout_parts(self) -> list[KnockoutPart]:
        return [("spatial", None, None), ("temporal", None, None)] if self.can_swap_projections else []

    def knock_out(self, part: str, index, branch, undo: contextlib.ExitStack) -> None:
        if part not in ("spatial", "temporal") or getattr(self, part) is None:
            super().knock_out(part, index, branch, undo)
        bypass(getattr(self, part), undo)


def spatial_options(config) -> dict:
    """SA's pooling switches from a VideoNetConfig (SA in SA, DNL, TAPE and GTA blocks)."""
    return dict(spatial_pool_first=config.sa_pool == "before", spatial_pool_keys=config.sa_pool != "none",
                spatial_pool_ceil=config.pool_ceil())


register_block("sa", lambda config, c, steps: DecoupledAttention(c, steps, temporal=False, **spatial_options(config)))
register_block("ta", lambda config, c, steps: DecoupledAttention(c, steps, spatial=False))
register_block("dnl", lambda config, c, steps: DecoupledAttention(c, steps, **spatial_options(config)))
register_block("tape", lambda config, c, steps: DecoupledAttention(c, steps, positional=True, **spatial_options(config)))
