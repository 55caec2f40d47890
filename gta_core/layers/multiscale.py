"""MViTv2's pooled multi-head attention (Li et al. 2022), as torchvision's `MultiscaleAttention` computes it.

Follows torchvision 0.28.0's models/video/mvit.py (`mvit_v2_s`: rel_pos_embed,
residual_pool, residual_with_cls_embed=False), which ours must equal, with
the same module names so that its state dicts load by a rename:

* `qkv` projects every token (CLS + T·H·W patches) to q, k, v of `heads`
  heads of width d = out_dim / heads;
* `pool_q`, `pool_k`, `pool_v` (torchvision's `Pool`): a depthwise 3×3×3
  Conv3d over each head's patch grid (stride (1, s, s), padding 1, no bias),
  the CLS token re-attached unpooled, then a LayerNorm over d (on the CLS too);
* logits q kᵀ/√d, plus the decomposed relative position bias on patch×patch
  pairs: q·R_t[t, t'] + q·R_h[y, y'] + q·R_w[x, x'] (q unscaled; the tables
  `rel_pos_t/h/w` are indexed by the pooled distance and linearly resized
  when the grids differ from those they were sized for); no bias on the CLS
  query's row or the CLS key's column;
* softmax, times v; residual pooling adds the pooled q to the patch outputs
  (not to the CLS); then the output projection (`project.0`).

The attention is joint space-time: every query (t, y, x) of the pooled
query grid over every key of the pooled key grid and the CLS key. It is a
layer of the network (`inserted = False`), recorded like an NL block's
attention (`MultiscaleRecord`): lazily as q, k, the three bias parts (per
query: its k_t, k_h and k_w bias terms) and each row's log-sum-exp, so a row
is formed on demand; densely only under capture(..., dense=True). Per head:
the views read the mean over heads, as TimeSformer's records do.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention_maps import DependencePart, FrameSpans, Problem, Recorder, cast_tensor
from .common import AttentionSoftmax
from .divided import HeadMeanRows
from .protocol import AttentionBlock, BlockRecord

POOL_KERNEL = 3          # every pool of mvit_v2_s is 3×3×3 with padding 1
LAYER_NORM_EPS = 1e-6    # torchvision's norm_layer: partial(nn.LayerNorm, eps=1e-6)


def pooled_size(size: int, stride: int) -> int:
    """Cells of an axis of `size` after a kernel-3, padding-1 pool of `stride`."""
    return (size - 1) // stride + 1


class TokenPool(nn.Module):
    """torchvision's `Pool`: depthwise conv over each head's (t, y, x) grid, CLS re-attached, LayerNorm over d."""

    def __init__(self, head_dim: int, stride: int) -> None:
        super().__init__()
        self.pool = nn.Conv3d(head_dim, head_dim, POOL_KERNEL, stride=(1, stride, stride), padding=POOL_KERNEL // 2,
                              groups=head_dim, bias=False)
        self.norm_act = nn.Sequential(nn.LayerNorm(head_dim, eps=LAYER_NORM_EPS))

    def forward(self, x: torch.Tensor, thw: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
        # x (B, heads, 1 + T·H·W, d) -> (B, heads, 1 + T·H'·W', d)
        batch = x.shape[0]
        grid = rearrange(x[:, :, 1:], "b n (t y x) d -> (b n) d t y x", t=thw[0], y=thw[1], x=thw[2])
        pooled = self.pool(grid)
        tokens = rearrange(pooled, "(b n) d t y x -> b n (t y x) d", b=batch)
        return self.norm_act(torch.cat([x[:, :, :1], tokens], dim=2)), tuple(pooled.shape[2:])


def _resized(table: torch.Tensor, length: int) -> torch.Tensor:
    """(length, d): a relative-position table linearly resized along its distances (torchvision's `_interpolate`)."""
    if table.shape[0] == length:
        return table
    return F.interpolate(table.T[None], size=length, mode="linear")[0].T


def _relative_table(table: torch.Tensor, queries: int, keys: int) -> torch.Tensor:
    """(queries, keys, d): the table entry of each (query, key) pair along one axis, distances scaled to the finer grid."""
    query_ratio, key_ratio = max(keys / queries, 1.0), max(queries / keys, 1.0)
    distance = torch.arange(queries)[:, None] * query_ratio - (torch.arange(keys)[None, :] + (1.0 - keys)) * key_ratio
    return _resized(table, 2 * max(queries, keys) - 1)[distance.long()]


def bias_parts(q: torch.Tensor, q_thw, k_thw, tables) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (B, heads, 1 + L, d), tables (R_t, R_h, R_w) -> each patch query's bias terms over the key steps,
    rows and columns: (B, heads, L, k_t), (…, k_h), (…, k_w)."""
    patches = rearrange(q[:, :, 1:], "b n (t y x) d -> b n t y x d", t=q_thw[0], y=q_thw[1], x=q_thw[2])
    r_t, r_h, r_w = (_relative_table(table, queries, keys) for table, queries, keys in zip(tables, q_thw, k_thw))
    parts = (torch.einsum("bntyxd,tkd->bntyxk", patches, r_t), torch.einsum("bntyxd,ykd->bntyxk", patches, r_h),
             torch.einsum("bntyxd,xkd->bntyxk", patches, r_w))
    return tuple(rearrange(part, "b n t y x k -> b n (t y x) k") for part in parts)


def combined_bias(rel_t: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor) -> torch.Tensor:
    """(..., k_t), (..., k_h), (..., k_w) -> (..., k_t·k_h·k_w): the bias of each patch key, row-major."""
    return (rel_h[..., None, :, None] + rel_w[..., None, None, :] + rel_t[..., :, None, None]).flatten(-3)


class BiasStatistics(nn.Module):
    """Hook point of a lazy capture: called with (q, k, log-sum-exp, scale, rel_t, rel_h, rel_w), returns nothing."""

    def forward(self, *statistics) -> None:
        return None


class BiasedSoftmax(AttentionSoftmax):
    """The softmax of logits that carry a bias; its statistics also see the bias parts."""

    def __init__(self) -> None:
        super().__init__()
        self.statistics = BiasStatistics()


@dataclass
class BiasedRows:
    """softmax(q kᵀ·scale + bias) of N problems (N = B·heads), kept lazily or densely (as `SoftmaxRows`).

    Token 0 is the CLS on both axes; the bias of patch query l over patch keys is
    `combined_bias(rel_t[n, l], rel_h[n, l], rel_w[n, l])`; the CLS row and column carry none.
    Rows are read with an int `n` and an int or (Q,) tensor `index`."""

    scale: float
    query: torch.Tensor | None = None       # (N, 1 + L, d)
    key: torch.Tensor | None = None         # (N, 1 + S, d)
    rel_t: torch.Tensor | None = None       # (N, L, k_t)
    rel_h: torch.Tensor | None = None       # (N, L, k_h)
    rel_w: torch.Tensor | None = None       # (N, L, k_w)
    logsumexp: torch.Tensor | None = None   # (N, 1 + L)
    dense: torch.Tensor | None = None       # (N, 1 + L, 1 + S)
    is_distribution = True

    def _scores(self, n: int, index) -> torch.Tensor:
        index = torch.as_tensor(index)
        scores = self.query[n, index].float() @ self.key[n].float().T * self.scale        # (..., 1 + S)
        patch = (index - 1).clamp(min=0)
        bias = combined_bias(*(part[n, patch].float() for part in (self.rel_t, self.rel_h, self.rel_w)))
        scores[..., 1:] += bias * (index > 0).unsqueeze(-1)
        return scores

    def row(self, n: int, index) -> torch.Tensor:
        """(1 + S,) float32 weights of query `index` (0: the CLS) of problem `n`; (Q, 1 + S) for a (Q,) index."""
        if self.dense is not None:
            return self.dense[n, index].float()
        return torch.softmax(self._scores(n, index), dim=-1)

    def column(self, n: int, index: int) -> torch.Tensor:
        """(1 + L,) float32 weight every query of problem `n` gives key `index`, from the stored log-sum-exp."""
        if self.dense is not None:
            return self.dense[n, :, index].float()
        scores = self.query[n].float() @ self.key[n, index].float() * self.scale
        if index > 0:
            k_t, k_h, k_w = self.rel_t.shape[-1], self.rel_h.shape[-1], self.rel_w.shape[-1]
            t, rest = divmod(index - 1, k_h * k_w)
            bias = self.rel_t[n, :, t] + self.rel_h[n, :, rest // k_w] + self.rel_w[n, :, rest % k_w]
            scores[1:] += bias.float()
        return torch.exp(scores - self.logsumexp[n].float())

    @property
    def weights(self) -> torch.Tensor:
        """(N, 1 + L, 1 + S) float32, formed on demand."""
        if self.dense is not None:
            return self.dense.float()
        scores = self.query.float() @ self.key.float().transpose(1, 2) * self.scale
        scores[:, 1:, 1:] += combined_bias(*(part.float() for part in (self.rel_t, self.rel_h, self.rel_w)))
        return torch.softmax(scores, dim=-1)

    def tensors(self) -> Iterator[torch.Tensor]:
        fields = (self.query, self.key, self.rel_t, self.rel_h, self.rel_w, self.logsumexp, self.dense)
        yield from (t for t in fields if t is not None)

    def to(self, device=None, dtype: torch.dtype | None = None) -> BiasedRows:
        """A copy on `device`, floating tensors as `dtype`; the log-sum-exp stays float32 (see SoftmaxRows.to)."""
        changes = {f.name: cast_tensor(getattr(self, f.name), device, dtype) for f in dataclasses.fields(self)
                   if f.name != "scale"}
        changes["logsumexp"] = cast_tensor(self.logsumexp, device, torch.float32)
        return dataclasses.replace(self, **changes)


@dataclass
class MultiscaleRecord(BlockRecord):
    """One MViT layer: every patch query (t, y, x) over the pooled keys (k_t, k_h, k_w) and the CLS key."""

    name: str
    rows: BiasedRows               # N = B·heads, tokens with the CLS first
    heads: int
    time_steps: int                # T' of the queries (= k_t: no temporal pooling in mvit_v2_s)
    grid: tuple[int, int]          # (H, W) pooled query grid
    key_grid: tuple[int, int]      # (h, w) pooled key grid
    input_grid: tuple[int, int]    # the block input's grid, before the query pooling
    pixel_mean: torch.Tensor       # (B, T', T'): patch-key weight per key step, mean over query cells and heads
    cls_key_weight: torch.Tensor   # (B,): weight on the CLS key, mean over patch queries and heads
    frame_spans: FrameSpans = ()
    kind: str = "mvit"
    inserted = False

    @property
    def num_steps(self) -> int:
        return self.time_steps

    def query_grid(self) -> tuple[int, int]:
        return self.grid

    def _index(self, t: int, y: int, x: int) -> int:
        return (t * self.grid[0] + y) * self.grid[1] + x

    def row(self, t: int, y: int, x: int, batch: int = 0) -> torch.Tensor:
        """(T', h, w): query (t, y, x)'s weights over the patch keys, mean over heads (the CLS key's share left out)."""
        mean = HeadMeanRows(self.rows, self.heads, skip=1).row(batch, self._index(t, y, x))
        return mean.reshape(self.time_steps, *self.key_grid)

    def query_slices(self, step: int, y: int, x: int, batch: int = 0) -> dict:
        return dict(spacetime=self.row(step, y, x, batch), key_grid=self.key_grid)

    def temporal_matrices(self, batch: int = 0) -> dict[str, torch.Tensor]:
        return {"MViT mean over query cells and heads (patch keys)": self.pixel_mean[batch].float()}

    def clip_matrix(self) -> torch.Tensor:
        return self.pixel_mean.float()

    def query_dependence(self, batch: int = 0) -> dict[str, DependencePart]:
        # Per query step, its H·W patch queries, each a whole row (CLS key included: a distribution).
        full = HeadMeanRows(self.rows, self.heads)
        per_step = self.grid[0] * self.grid[1]
        problems = [Problem(lambda index, start=1 + t * per_step: full.row(batch, start + index), per_step)
                    for t in range(self.time_steps)]
        return {"MViT": DependencePart(problems)}

    def note(self, batch: int = 0) -> str:
        (height, width), (key_h, key_w) = self.grid, self.key_grid
        cls_weight = float(self.cls_key_weight[batch].float())
        pooled = "" if self.grid == self.input_grid else f" (pooled from {self.input_grid[0]}×{self.input_grid[1]})"
        return (
            f"{self.name} (MViTv2, pooled space-time attention): {self.time_steps} time steps of 2 frames each; "
            f"queries on a {height}×{width} grid{pooled}, keys pooled to {key_h}×{key_w} per step, plus the CLS "
            f"token; a relative position bias (time, height, width) is added to the logits. The maps show the "
            f"patch keys; the CLS key takes the rest (on average {cls_weight:.2f} of a row here), and the CLS "
            f"query's own row is not shown. " + ("One head." if self.heads == 1 else f"Mean over {self.heads} heads.")
        )


def _record_summaries(rows: BiasedRows, heads: int, batch: int, q_thw, k_thw) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T', k_t) mean patch-key weight per key step, and (B,) mean CLS-key weight, over query cells and heads:
    one query step of one head at a time, so no more than H·W rows are formed at once."""
    steps, cells = q_thw[0], q_thw[1] * q_thw[2]
    matrix = torch.zeros(batch, heads, steps, k_thw[0])
    on_cls = torch.zeros(batch, heads, steps)
    for b in range(batch):
        for h in range(heads):
            for t in range(steps):
                block = rows.row(b * heads + h, torch.arange(1 + t * cells, 1 + (t + 1) * cells))   # (H·W, 1 + S)
                on_cls[b, h, t] = block[:, 0].mean()
                matrix[b, h, t] = block[:, 1:].reshape(cells, k_thw[0], -1).sum(-1).mean(0)
    return matrix.mean(dim=1), on_cls.mean(dim=(1, 2))


class MultiscaleAttention(AttentionBlock):
    """torchvision's MultiscaleAttention (mvit_v2_s's switches): tokens (B, 1 + T·H·W, C_in), thw ->
    (B, 1 + T·H'·W', C_out) and the pooled thw."""

    display_name = "MVIT"
    paper_reference = "Li et al. 2022 (MViTv2), pooling attention with decomposed relative positions"
    inserted = False

    def __init__(self, in_dim: int, out_dim: int, heads: int, q_stride: int, kv_stride: int,
                 input_size: tuple[int, int]) -> None:
        """`input_size` (T, S): the steps and grid side this layer's tables are sized for (torchvision's)."""
        super().__init__()
        if out_dim % heads:
            raise ValueError(f"width {out_dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, out_dim // heads
        self.scale = 1 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(in_dim, 3 * out_dim)
        self.project = nn.Sequential(nn.Linear(out_dim, out_dim))
        self.pool_q = TokenPool(self.head_dim, q_stride)
        self.pool_k = TokenPool(self.head_dim, kv_stride)
        self.pool_v = TokenPool(self.head_dim, kv_stride)
        steps, side = input_size
        spatial = 2 * max(side // q_stride, side // kv_stride) - 1
        self.rel_pos_h = nn.Parameter(torch.zeros(spatial, self.head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(spatial, self.head_dim))
        self.rel_pos_t = nn.Parameter(torch.zeros(2 * steps - 1, self.head_dim))
        self.softmax = BiasedSoftmax()

    def forward(self, x: torch.Tensor, thw: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
        q, k, v = rearrange(self.qkv(x), "b l (three n d) -> three b n l d", three=3, n=self.heads)
        k, k_thw = self.pool_k(k, thw)
        v, _ = self.pool_v(v, thw)
        q, q_thw = self.pool_q(q, thw)
        parts = bias_parts(q, q_thw, k_thw, (self.rel_pos_t, self.rel_pos_h, self.rel_pos_w))
        scores = (self.scale * q) @ k.transpose(-2, -1)       # torchvision's order of operations: the same rounding
        scores[:, :, 1:, 1:] += combined_bias(*parts)
        weights = self.softmax(scores)
        if self.softmax.recorded:
            logsumexp = torch.logsumexp(scores.float(), dim=-1)
            self.softmax.statistics(*(z.flatten(0, 1) for z in (q, k, logsumexp)), self.scale,
                                    *(part.flatten(0, 1) for part in parts))
        out = weights @ v
        # Residual pooling: the pooled q joins the patch outputs; the CLS output keeps none.
        out = torch.cat([out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]], dim=2)
        return self.project(rearrange(out, "b n l d -> b l (n d)")), q_thw

    def watch(self, recorder: Recorder) -> None:
        recorder.watch_input(self, shape=lambda args: args[1])        # the input (T, H, W)
        recorder.watch_rows(self.softmax)

    def make_record(self, recorder: Recorder, name: str, batch: int, spans: FrameSpans, swapped: bool) -> MultiscaleRecord:
        steps, height, width = recorder.input_shapes[self]
        q_thw = (steps, pooled_size(height, self.pool_q.pool.stride[1]), pooled_size(width, self.pool_q.pool.stride[2]))
        k_thw = (steps, pooled_size(height, self.pool_k.pool.stride[1]), pooled_size(width, self.pool_k.pool.stride[2]))
        query, key, logsumexp, scale, rel_t, rel_h, rel_w = recorder.statistics[self.softmax]
        if recorder.dense:
            rows = BiasedRows(scale, dense=recorder.outputs[self.softmax].flatten(0, 1))
        else:
            rows = BiasedRows(scale, query, key, rel_t, rel_h, rel_w, logsumexp)
        pixel_mean, on_cls = _record_summaries(rows, self.heads, batch, q_thw, k_thw)
        return MultiscaleRecord(name, rows, self.heads, steps, q_thw[1:], k_thw[1:], (height, width), pixel_mean, on_cls,
                                frame_spans=spans)

    @property
    def compare_label(self) -> str:
        return "MVIT"

    def query_dependence_parts(self) -> list[str]:
        return ["MViT"]
