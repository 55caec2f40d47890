"""What a capture keeps of a block's attention, and the recorder that fills it.

A softmax attention softmax(q kᵀ·scale) over L queries and S keys is kept
either *lazily*, as the query and key projections (N, L, C') and (N, S, C')
plus each row's log-sum-exp (N, L), or *densely*, as the (N, L, S) weights.
A lazy row is softmax(q_l kᵀ·scale) formed when a view asks for it: the
same numbers, at O((L + S)·C') memory instead of O(L·S). The log-sum-exp
(which holds each row's maximum, so it is stable) gives single weights and
columns without forming a row: w_ls = exp(q_l·k_s·scale − lse_l). An NL block of SlowFast at 64×256²
has L = 16·32·32 and S = 16·16·16: 268 MB dense, 21 MB lazy.

`capture(..., dense=None)` keeps each softmax in the cheaper of the two forms
(TA's T×T rows are smaller than its projections), `dense=True` keeps the
weights exactly as the softmax module returned them (tests, export of small
models), `dense=False` keeps every softmax lazily (tests of the lazy path).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

# Per time step of a block: the [start, stop) input frames it stands for. R2D: ((0, 1), (1, 2), ...);
# SlowFast's Slow pathway: ((0, 4), (4, 8), ...); I3D's res3/res4: ((0, 8), (8, 16), ...).
FrameSpans = tuple[tuple[int, int], ...]
# Per axis (rows, columns): the [start, stop) query-grid cells each key cell pools.
KeySpans = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]


Rows = Callable[[torch.Tensor], torch.Tensor]      # (Q,) query indices -> (Q, K) float32 rows


@dataclass
class Problem:
    """Queries 0..num_queries-1 whose rows share keys and one mean row (one query step of one part of a
    block): what gta_core.query_dependence scores, reading `rows` a chunk of queries at a time."""

    rows: Rows
    num_queries: int


@dataclass
class DependencePart:
    """One part of a block (NL, SA, TA, ...) as the query-dependence score sees it (`BlockRecord.query_dependence`)."""

    problems: list[Problem] | None     # None: query-independent by construction (GTA's M̂: analytic 0)
    is_distribution: bool = True       # False: signed rows (dot-product NL), for which JS is undefined
    note: str = ""


def cast_tensor(value, device, dtype):
    """A tensor moved (floating tensors also cast); anything else as it is."""
    if not isinstance(value, torch.Tensor):
        return value
    return value.to(device, dtype if value.is_floating_point() and dtype is not None else value.dtype)


@dataclass
class SoftmaxRows:
    """softmax(q kᵀ · scale) of N independent problems, kept lazily or densely (module docstring).

    `is_distribution` False: the rows are mmcv's dot product q kᵀ · scale / S, no softmax (signed, not
    summing to 1); a lazy record then keeps q and k only (no log-sum-exp)."""

    scale: float
    query: torch.Tensor | None = None       # (N, L, C') lazy
    key: torch.Tensor | None = None         # (N, S, C') lazy
    logsumexp: torch.Tensor | None = None   # (N, L) lazy: log Σ_s exp(q_l k_s · scale); None for dot products
    dense: torch.Tensor | None = None       # (N, L, S) dense
    is_distribution: bool = True

    def _weights(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores q·k·scale (..., S) -> the weights: a softmax, or / S for dot products."""
        return torch.softmax(scores, dim=-1) if self.is_distribution else scores / scores.shape[-1]

    def row(self, n, index) -> torch.Tensor:
        """(S,) float32 weights of query `index` of problem `n`; with a (Q,) tensor for `n` or `index`
        (or both), the (Q, S) rows of those queries: what the query-dependence score reads in chunks.

        A whole row is normalised by its own scores (a softmax over S): exact at float32, and
        at float16 storage the rounding of q and k moves the weights, not their sum."""
        if self.dense is not None:
            return self.dense[n, index].float()
        query = self.query[n, index].float().unsqueeze(-2)                  # (..., 1, C')
        scores = (query @ self.key[n].float().transpose(-2, -1)).squeeze(-2)  # (..., S)
        return self._weights(scores * self.scale)

    def column(self, n: int, index: int) -> torch.Tensor:
        """(L,) float32 weight every query of problem `n` gives key `index` (which queries look here):
        exp(q_l·k·scale − lse_l), where the stored log-sum-exp stands for each row's other S − 1 keys."""
        if self.dense is not None:
            return self.dense[n, :, index].float()
        scores = self.query[n].float() @ self.key[n, index].float() * self.scale               # (L,)
        if not self.is_distribution:
            return scores / self.key.shape[1]
        return torch.exp(scores - self.logsumexp[n].float())

    @property
    def weights(self) -> torch.Tensor:
        """(N, L, S) float32: every weight (formed on demand when lazy; O(N·L·S) memory)."""
        if self.dense is not None:
            return self.dense.float()
        return self._weights(self.query.float() @ self.key.float().transpose(1, 2) * self.scale)

    @property
    def is_lazy(self) -> bool:
        return self.dense is None

    def tensors(self) -> Iterator[torch.Tensor]:
        yield from (t for t in (self.query, self.key, self.logsumexp, self.dense) if t is not None)

    def to(self, device=None, dtype: torch.dtype | None = None) -> SoftmaxRows:
        """A copy on `device` with floating tensors as `dtype`; rows are always computed in float32.

        The log-sum-exp stays float32 (one number per query): in float16 its rounding alone
        would move every weight of a row by up to 0.1 %."""
        changes = {f.name: cast_tensor(getattr(self, f.name), device, dtype) for f in dataclasses.fields(self)
                   if f.name not in ("scale", "is_distribution")}
        changes["logsumexp"] = cast_tensor(self.logsumexp, device, torch.float32)
        return dataclasses.replace(self, **changes)


class Recorder:
    """Hooks that a block's `watch` attaches for one capture, and what they saw.

    `watch_rows(softmax)` keeps the inputs of the softmax's statistics probe
    (q, k, log-sum-exp: see `common.attend`) and, when dense, the weights;
    `watch_output` / `watch_input` keep any module's output or input shape.
    Every hook keeps references, never copies; `eject` removes them all.
    """

    def __init__(self, dense: bool | None = None) -> None:
        self.dense = dense
        self.outputs: dict[nn.Module, torch.Tensor] = {}
        self.input_shapes: dict[nn.Module, torch.Size] = {}
        self.statistics: dict[nn.Module, tuple] = {}
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def watch_output(self, module: nn.Module) -> None:
        def hook(mod, args, output):
            self.outputs[mod] = output.detach()
        self.handles.append(module.register_forward_hook(hook))

    def watch_input(self, module: nn.Module, shape=None) -> None:
        """Keep the shape of `module`'s first input, or `shape(args)` for a module whose input is not one tensor."""
        def hook(mod, args):
            self.input_shapes[mod] = args[0].shape if shape is None else torch.Size(shape(args))
        self.handles.append(module.register_forward_pre_hook(hook))

    def watch_rows(self, softmax: nn.Module) -> None:
        """Record `softmax` (an AttentionSoftmax): its probe's q, k, lse, and its weights when dense."""
        def hook(mod, args):
            self.statistics[softmax] = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
        self.handles.append(softmax.statistics.register_forward_pre_hook(hook))
        if self.dense:
            self.watch_output(softmax)

    def rows(self, softmax: nn.Module) -> SoftmaxRows:
        """What `watch_rows(softmax)` saw, in the form the capture asked for."""
        query, key, logsumexp, scale = self.statistics[softmax]
        distribution = softmax.is_distribution          # False: dot-product weights (q kᵀ·scale/S)
        if self.dense:
            return SoftmaxRows(scale, dense=self.outputs[softmax], is_distribution=distribution)
        lazy = SoftmaxRows(scale, query, key, logsumexp, is_distribution=distribution)
        queries, keys, channels = query.shape[1], key.shape[1], query.shape[2]
        if self.dense is None and queries * keys <= (queries + keys) * channels:
            # the weights are the smaller form
            return SoftmaxRows(scale, dense=lazy.weights.to(query.dtype), is_distribution=distribution)
        return lazy

    def eject(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@dataclass
class SpatialMaps:
    """SA weights: for each time step, every query pixel over the pooled key pixels."""

    rows: SoftmaxRows              # N = B·T', L = H·W, S = h·w
    num_steps: int                 # T'
    grid: tuple[int, int]          # (H, W) query grid
    key_grid: tuple[int, int]      # (h, w) key grid
    key_spans: KeySpans = ((), ())

    @property
    def weights(self) -> torch.Tensor:
        """(B, T', H·W, h·w), formed on demand."""
        return rearrange(self.rows.weights, "(b t) q k -> b t q k", t=self.num_steps)

    def map_at(self, t: int, y: int, x: int, batch: int = 0) -> torch.Tensor:
        """(h, w) attention of query pixel (y, x) of step t over that step's keys."""
        return self.rows.row(batch * self.num_steps + t, y * self.grid[1] + x).reshape(self.key_grid)

    def problems(self, batch: int = 0) -> list[Problem]:
        """Query dependence: per step t, its H·W query pixels over that step's keys (lazy rows in chunks)."""
        first = batch * self.num_steps
        return [Problem(lambda index, n=first + t: self.rows.row(n, index), self.grid[0] * self.grid[1])
                for t in range(self.num_steps)]

    def tensors(self) -> Iterator[torch.Tensor]:
        return self.rows.tensors()

    def to(self, device=None, dtype=None) -> SpatialMaps:
        return dataclasses.replace(self, rows=self.rows.to(device, dtype))


@dataclass
class TemporalMaps:
    """TA/TAPE weights: for each pixel, a T'×T' matrix (query step × key step)."""

    rows: SoftmaxRows              # N = B·H·W, L = S = T'
    grid: tuple[int, int]          # (H, W)
    pixel_mean: torch.Tensor       # (B, T', T'): the weights averaged over pixels, formed at capture

    @classmethod
    def from_rows(cls, rows: SoftmaxRows, grid: tuple[int, int]) -> TemporalMaps:
        maps = cls(rows, grid, torch.empty(0))
        maps.pixel_mean = maps.weights.mean(dim=(1, 2))
        return maps

    @property
    def weights(self) -> torch.Tensor:
        """(B, H, W, T', T'), formed on demand."""
        return rearrange(self.rows.weights, "(b h w) q k -> b h w q k", h=self.grid[0], w=self.grid[1])

    def weights_at(self, t: int, y: int, x: int, batch: int = 0) -> torch.Tensor:
        """(T',) weights of query step t at pixel (y, x) over the key steps."""
        return self.rows.row((batch * self.grid[0] + y) * self.grid[1] + x, t)

    def mean_matrix(self, batch: int = 0) -> torch.Tensor:
        """(T', T') weights averaged over pixels (the TA counterpart of Fig. 5)."""
        return self.pixel_mean[batch].float()

    def problems(self, batch: int = 0) -> list[Problem]:
        """Query dependence: per query step t, the H·W pixels' rows over the T' key steps; a chunk of
        pixels is a chunk of problems n of `rows` (the mean row is the pixel mean, `pixel_mean[batch, t]`)."""
        pixels = self.grid[0] * self.grid[1]
        return [Problem(lambda index, t=t: self.rows.row(batch * pixels + index, t), pixels)
                for t in range(self.pixel_mean.shape[-1])]

    def tensors(self) -> Iterator[torch.Tensor]:
        yield from self.rows.tensors()
        yield self.pixel_mean

    def to(self, device=None, dtype=None) -> TemporalMaps:
        return dataclasses.replace(self, rows=self.rows.to(device, dtype), pixel_mean=cast_tensor(self.pixel_mean, device, dtype))
