"""The non-local block (Wang et al. 2018): embedded Gaussian (ours), Gaussian or dot product.

The defaults are the variant that reproduces Table 1 of the GTA paper
(R2D-50 + NL: 31.2 M parameters, 61.1 GFLOPs at 8×224²): θ, φ, g are 1×1
projections C → C/2, φ and g are max-pooled 2×2 in space *after* the
projection, and the softmax runs over all T·h·w key positions of the clip.

Switches for the non-local blocks of published checkpoints (the maths of
each is pinned against the peer's own code in tests/test_importers.py):

* `scale`: softmax(θφᵀ/√C') (ours, PySlowFast) or softmax(θφᵀ) (mmcv's
  NonLocal3d with use_scale=False, as in MMAction2's TSM/I3D NL configs, and
  the TSM repository's ops/non_local.py).
* `pool`: "after" the φ/g projection (ours, mmcv, TSM), "before" it
  (PySlowFast pools X, then projects) or "none".
* `pool_ceil`: ceil (ours) or floor (mmcv's and TSM's MaxPool3d((1, 2, 2)))
  rounding of odd grids.
* `out_bias`: W^O with a bias (ours, TSM) or without (mmcv's ConvModule
  followed by a norm has none).
* `mode`, mmcv's `_NonLocalNd.mode` (mmcv/cnn/bricks/non_local.py):
  "embedded_gaussian" softmax(θφᵀ·scale) (ours); "gaussian" softmax(X X_pᵀ·scale)
  on the raw features, no θ/φ (X_p the pooled X; mmcv never scales it, so
  imports set scale=False); "dot_product" θφᵀ/S with S the number of keys and
  no softmax (mmcv ignores use_scale there, and so does this block): its rows
  are signed and do not sum to 1 (`softmax.is_distribution` is False).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange

from .attention_maps import DependencePart, FrameSpans, KeySpans, Problem, Recorder, SoftmaxRows
from .common import (
    AttentionSoftmax, DotProductWeights, attend, conv1x1, key_pool, pooled_grid, pooled_spans, zero_init_batchnorm,
)
from .protocol import AttentionBlock, BlockRecord, register_block

POOL_PLACES = ("after", "before", "none")
NL_MODES = ("embedded_gaussian", "gaussian", "dot_product")


def _unprojected(x: torch.Tensor) -> torch.Tensor:
    """θ and φ of the "gaussian" mode: the features themselves."""
    return x


@dataclass
class NonLocalRecord(BlockRecord):
    """NL: every query (t, y, x) over all T'·h·w keys of its clip."""

    name: str
    rows: SoftmaxRows              # N = B, L = T'·H·W, S = T'·h·w
    time_steps: int                # T'
    grid: tuple[int, int]          # (H, W) query grid
    key_grid: tuple[int, int]      # (h, w) pooled key grid
    key_spans: KeySpans = ((), ())
    frame_spans: FrameSpans = ()
    kind: str = "nl"
    mode: str = "embedded_gaussian"     # the block's NL mode (NL_MODES)

    @property
    def num_steps(self) -> int:
        return self.time_steps

    @property
    def is_distribution(self) -> bool:
        """False for the dot-product mode (θφᵀ/N, no softmax): rows are signed and do not sum to 1."""
        return self.rows.is_distribution

    @property
    def weights(self) -> torch.Tensor:
        """(B, T'·H·W, T'·h·w), formed on demand (O((T'HW)²) memory: small models only)."""
        return self.rows.weights

    def row(self, t: int, y: int, x: int, batch: int = 0) -> torch.Tensor:
        """(T', h, w): the attention of query (t, y, x) over all of space-time (Fig. 1)."""
        height, width = self.grid
        return self.rows.row(batch, (t * height + y) * width + x).reshape(self.time_steps, *self.key_grid)

    def query_grid(self) -> tuple[int, int]:
        return self.grid

    def query_slices(self, step: int, y: int, x: int, batch: int = 0) -> dict:
        return dict(spacetime=self.row(step, y, x, batch), key_grid=self.key_grid, key_spans=self.key_spans,
                    is_distribution=self.is_distribution)

    def query_dependence(self, batch: int = 0) -> dict[str, DependencePart]:
        # One problem per query step t: its H·W queries, each a lazy row over all T'·h·w keys.
        per_step = self.grid[0] * self.grid[1]
        problems = [Problem(lambda index, start=t * per_step: self.rows.row(batch, start + index), per_step)
                    for t in range(self.time_steps)]
        return {"NL": DependencePart(problems, self.is_distribution, "" if self.is_distribution else f"{self.mode} NL")}


class NonLocalBlock(AttentionBlock):
    """Y = X + BN(f(θ, φ) g W^O), attention over all of space-time; f = softmax(θφᵀ/√C') by default."""

    display_name = "NL"
    paper_reference = "Wang et al. 2018, Non-local Neural Networks (embedded Gaussian); GTA paper Table 1"

    def __init__(
        self,
        channels: int,
        num_steps: int,
        inner_channels: int | None = None,
        pool: str = "after",
        pool_ceil: bool = True,
        scale: bool = True,
        out_bias: bool = True,
        mode: str = "embedded_gaussian",
    ) -> None:
        super().__init__()
        if pool not in POOL_PLACES:
            raise ValueError(f"unknown NL pooling {pool!r}; choose one of {POOL_PLACES}")
        if mode not in NL_MODES:
            raise ValueError(f"unknown NL mode {mode!r}; choose one of {NL_MODES}")
        self.mode = mode
        self.num_steps = num_steps      # T': time steps of the block's input, (B·T', C, H, W)
        self.inner_channels = inner_channels or channels // 2
        self.pool_first = pool == "before"
        # The softmax's temperature: √ of the width the scores are dot products over (X's own for "gaussian").
        score_width = channels if mode == "gaussian" else self.inner_channels
        self.scale = 1 / math.sqrt(score_width) if scale and mode != "dot_product" else 1.0
        self.query = self.key = None                            # "gaussian": θ and φ are the identity
        if mode != "gaussian":
            self.query = conv1x1(channels, self.inner_channels)   # θ
            self.key = conv1x1(channels, self.inner_channels)     # φ
        self.value = conv1x1(channels, self.inner_channels)   # g
        self.pool = key_pool(pool != "none", ceil_mode=pool_ceil)
        # DotProductWeights: θφᵀ/S, no softmax; capture reads it as any softmax (`self.softmax`).
        self.softmax = DotProductWeights() if mode == "dot_product" else AttentionSoftmax()
        self.out = conv1x1(self.inner_channels, channels, bias=out_bias)  # W^O
        self.norm = zero_init_batchnorm(channels)

    def key_grid(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) grid of the keys for an (H, W) query grid."""
        return pooled_grid(self.pool, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B·T', C, H, W), time steps folded into the batch by the backbone.
        height, width = x.shape[-2:]
        steps = self.num_steps
        query, key = (part if part is not None else _unprojected for part in (self.query, self.key))
        q = rearrange(query(x), "(b t) c h w -> b (t h w) c", t=steps)
        if self.pool_first:
            pooled = self.pool(x)
            k, v = key(pooled), self.value(pooled)
        else:
            k, v = self.pool(key(x)), self.pool(self.value(x))
        k = rearrange(k, "(b t) c h w -> b (t h w) c", t=steps)
        v = rearrange(v, "(b t) c h w -> b (t h w) c", t=steps)
        # f((B, T·H·W, C') x (B, C', T·h·w)) x (B, T·h·w, C') -> (B, T·H·W, C') (C' = C for "gaussian"'s scores)
        context = attend(q, k, v, self.scale, self.softmax)
        context = rearrange(context, "b (t h w) c -> (b t) c h w", t=steps, h=height, w=width)
        return x + self.norm(self.out(context))

    def watch(self, recorder: Recorder) -> None:
        recorder.watch_input(self)
        recorder.watch_rows(self.softmax)

    def make_record(self, recorder: Recorder, name: str, batch: int, spans: FrameSpans, swapped: bool) -> NonLocalRecord:
        height, width = recorder.input_shapes[self][-2:]
        key_spans = (pooled_spans(self.pool, height), pooled_spans(self.pool, width))
        return NonLocalRecord(
            name, recorder.rows(self.softmax), len(spans), (height, width), self.key_grid(height, width), key_spans,
            frame_spans=spans, mode=self.mode,
        )

    def query_dependence_parts(self) -> list[str]:
        return ["NL"]


register_block("nl", lambda config, channels, steps: NonLocalBlock(
    channels, steps, pool=config.nl_pool, pool_ceil=config.pool_ceil(config.nl_pool_ceil), scale=config.nl_scale,
    out_bias=config.nl_out_bias, mode=config.nl_mode,
))
