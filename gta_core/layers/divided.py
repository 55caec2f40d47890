"""TimeSformer's divided space-time attention (Bertasius et al. 2021): TA, then SA, then an MLP, per layer.

The paper's decoupling (§3.2) as a Transformer layer: every patch attends
over its own T positions in time (TA), then every frame's patches, with the
CLS token, attend over that frame (SA). Follows `TimesformerLayer` of
HF transformers (models/timesformer/modeling_timesformer.py,
`attention_type="divided_space_time"`), which ours must equal:

* TA: pre-LayerNorm, multi-head attention over the T tokens of one patch
  (the CLS token takes no part), its output projection, then a further
  linear layer (`temporal_dense`), added to the patches;
* SA: pre-LayerNorm over [CLS; the frame's h·w patches]: the CLS token is
  copied into each frame's sequence, so each frame has 1 + h·w queries and
  keys; the CLS token's T outputs are averaged over frames and added to it;
* MLP (pre-LayerNorm, GELU) on every token.

Tokens are kept as CLS (B, 1, C) and patches (B, T, h·w, C), row-major over
the patch grid. Attention goes through `common.attend` with each part's
softmax module (`softmax`), heads folded into the batch: TA (B·h·w·heads, T, T),
SA (B·T·heads, 1 + h·w, 1 + h·w). The block is a layer of the network, not an
inserted block (`inserted = False`): it is not built from a VideoNetConfig's
`block`, and offers no knockouts.

Its record (`DividedRecord`) is read like a DNL block's, from the recorder's
rows (lazy or dense, as for every block), with the head mean formed per row:

* TA: `TemporalMaps` (B, h, w, T, T), each patch's attention over its own T
  time steps (each step one input frame).
* SA: `SpatialMaps` (B, T, h·w, h·w), each patch query's weights over the
  frame's patches. TimeSformer's SA keys are [CLS; patches], so these rows
  sum to 1 minus the weight on the CLS key, which is kept apart
  (`cls_key_weight`), as is the CLS query's own row over the patches
  (`cls_query_row`, one per frame: the CLS token is copied into every frame).
* Heads: the mean over the attention heads, for SA and TA alike.

The patch grid is the block's feature grid (no key pooling: key cell = query cell).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from einops import rearrange, reduce
from torch import nn

from .attention_maps import DependencePart, FrameSpans, Problem, Recorder, SoftmaxRows, SpatialMaps, TemporalMaps
from .common import AttentionSoftmax, attend
from .self_attention import DecoupledRecord
from .protocol import AttentionBlock


class MultiHeadAttention(nn.Module):
    """softmax(q kᵀ / √d) v per head, then the output projection: HF's TimeSformerAttention."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.softmax = AttentionSoftmax()
        self.out = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # tokens (N, L, C) -> q, k, v (N·heads, L, C/heads)
        q, k, v = rearrange(self.qkv(tokens), "n l (three h d) -> three (n h) l d", three=3, h=self.heads)
        context = attend(q, k, v, q.shape[-1] ** -0.5, self.softmax)
        return self.out(rearrange(context, "(n h) l d -> n l (h d)", h=self.heads))


@dataclass
class HeadMeanRows:
    """Rows of a multi-head softmax averaged over heads, with the first `skip` tokens (the CLS) left out of
    the queries and the keys; read like `SoftmaxRows` (N problems, each its heads' mean)."""

    rows: SoftmaxRows              # N·heads problems (heads minor, as `MultiHeadAttention` folds them)
    heads: int
    skip: int = 0

    def whole_row(self, n: int, index: int | torch.Tensor) -> torch.Tensor:
        """(S,) or (Q, S) float32: the heads' mean weights of query `index` (one, or a tensor of them, counted
        after the skipped tokens) over every key, the skipped ones included: a distribution."""
        per_head = [self.rows.row(n * self.heads + h, index + self.skip) for h in range(self.heads)]
        return torch.stack(per_head).mean(dim=0)

    def row(self, n: int, index: int | torch.Tensor) -> torch.Tensor:
        """(S − skip,) or (Q, S − skip) float32: `whole_row` without the skipped keys (the key axis is the last)."""
        return self.whole_row(n, index)[..., self.skip:]

    @property
    def weights(self) -> torch.Tensor:
        """(N, L − skip, S − skip) float32, formed on demand."""
        mean = reduce(self.rows.weights, "(n h) q k -> n q k", "mean", h=self.heads)
        return mean[:, self.skip:, self.skip:]

    def tensors(self) -> Iterator[torch.Tensor]:
        return self.rows.tensors()

    def to(self, device=None, dtype: torch.dtype | None = None) -> HeadMeanRows:
        return dataclasses.replace(self, rows=self.rows.to(device, dtype))


def _cls_weights(rows: SoftmaxRows, heads: int, problems: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, h·w) each: every patch query's weight on the CLS key, and the CLS query's row over the patches,
    both averaged over heads (token 0 is the CLS)."""
    on_cls = torch.stack([rows.column(n, 0)[1:] for n in range(problems * heads)])      # (N·heads, h·w)
    cls_row = torch.stack([rows.row(n, 0)[1:] for n in range(problems * heads)])
    return (reduce(on_cls, "(n h) q -> n q", "mean", h=heads), reduce(cls_row, "(n h) k -> n k", "mean", h=heads))


@dataclass
class DividedRecord(DecoupledRecord):
    """A TimeSformer layer: TA and SA like a DNL block's, plus what the CLS token takes and gives."""

    cls_key_weight: torch.Tensor | None = None   # (B, T, h·w): SA weight of each patch query on the CLS key
    cls_query_row: torch.Tensor | None = None    # (B, T, h·w): the CLS query's SA weights over the patches
    inserted = False

    @property
    def swappable(self) -> bool:
        return False          # TA and SA share no projections to swap (Fig. 7 is DNL's)

    def query_dependence(self, batch: int = 0) -> dict[str, DependencePart]:
        """As a DNL block's, but SA's rows are whole: over the CLS key and the patches, so each is a
        distribution (the maps show the patch part, which sums to 1 minus the CLS key's weight)."""
        parts = super().query_dependence(batch)
        spatial, first = self.spatial, batch * self.spatial.num_steps
        parts["SA"] = DependencePart([Problem(lambda index, n=first + t: spatial.rows.whole_row(n, index),
                                              spatial.grid[0] * spatial.grid[1]) for t in range(spatial.num_steps)])
        return parts

    def temporal_matrices(self, batch: int = 0) -> dict[str, torch.Tensor]:
        return {"TA mean over patches and heads": self.temporal.mean_matrix(batch)}

    def note(self, batch: int = 0) -> str:
        height, width = self.spatial.grid
        frames = self.num_steps
        cls_weight = float(self.cls_key_weight[batch].float().mean())
        return (
            f"{self.name} (TimeSformer, divided space-time attention): {frames} time steps, one input frame each; "
            f"a {height}×{width} grid of patches. TA: each patch over its own {frames} time steps (the CLS token "
            f"takes no part). SA: each patch over its frame's patches and the CLS token; the maps show the patch "
            f"part, the CLS key takes the rest (on average {cls_weight:.2f} of a row here). Mean over heads."
        )


class DividedSpaceTimeBlock(AttentionBlock):
    """One TimeSformer layer on (CLS (B, 1, C), patches (B, T, h·w, C)) -> the same shapes."""

    display_name = "DIVIDED"
    paper_reference = "Bertasius et al. 2021 (TimeSformer), divided space-time attention; GTA paper §3.2"
    inserted = False

    def __init__(self, dim: int, heads: int, mlp_dim: int, eps: float = 1e-6, qkv_bias: bool = True) -> None:
        super().__init__()
        self.temporal_norm = nn.LayerNorm(dim, eps=eps)
        self.temporal = MultiHeadAttention(dim, heads, qkv_bias)
        self.temporal_dense = nn.Linear(dim, dim)
        self.spatial_norm = nn.LayerNorm(dim, eps=eps)
        self.spatial = MultiHeadAttention(dim, heads, qkv_bias)
        self.mlp_norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(
        self, cls: torch.Tensor, patches: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`grid` (h, w): the patch grid the h·w patches are laid out on, row-major (capture reads it)."""
        frames, count = patches.shape[1:3]
        if count != grid[0] * grid[1]:
            raise ValueError(f"{count} patches per frame do not fill a {grid[0]}×{grid[1]} grid")
        # TA: each patch position is a sequence of T tokens, (B·h·w, T, C).
        along_time = rearrange(patches, "b t n c -> (b n) t c")
        temporal = self.temporal(self.temporal_norm(along_time))
        patches = patches + self.temporal_dense(rearrange(temporal, "(b n) t c -> b t n c", n=count))
        # SA: each frame is a sequence [CLS; h·w patches], (B·T, 1 + h·w, C).
        per_frame = torch.cat([cls.repeat_interleave(frames, dim=0), rearrange(patches, "b t n c -> (b t) n c")], 1)
        spatial = self.spatial(self.spatial_norm(per_frame))
        cls = cls + rearrange(spatial[:, :1], "(b t) 1 c -> b t c", t=frames).mean(dim=1, keepdim=True)
        patches = patches + rearrange(spatial[:, 1:], "(b t) n c -> b t n c", t=frames)
        # MLP on every token (CLS and patches alike).
        cls = cls + self.mlp(self.mlp_norm(cls))
        return cls, patches + self.mlp(self.mlp_norm(patches))

    @property
    def compare_label(self) -> str:
        return "DIVIDED"

    def watch(self, recorder: Recorder) -> None:
        # The block's "input shape": (B, T, h, w), from its patches (B, T, h·w, C) and the grid argument.
        recorder.watch_input(self, shape=lambda args: (*args[1].shape[:2], *args[2]))
        recorder.watch_rows(self.temporal.softmax)
        recorder.watch_rows(self.spatial.softmax)

    def make_record(self, recorder: Recorder, name: str, batch: int, spans: FrameSpans, swapped: bool) -> DividedRecord:
        _, frames, height, width = recorder.input_shapes[self]
        heads = self.spatial.heads
        spatial_rows = recorder.rows(self.spatial.softmax)            # (B·T·heads, 1 + h·w, 1 + h·w)
        cells = (tuple((i, i + 1) for i in range(height)), tuple((i, i + 1) for i in range(width)))
        on_cls, cls_row = _cls_weights(spatial_rows, heads, batch * frames)
        temporal_rows = HeadMeanRows(recorder.rows(self.temporal.softmax), heads)   # (B·h·w, T, T)
        return DividedRecord(
            name,
            spatial=SpatialMaps(HeadMeanRows(spatial_rows, heads, skip=1), frames, (height, width), (height, width), cells),
            temporal=TemporalMaps.from_rows(temporal_rows, (height, width)),
            positional=False,
            swapped=False,
            kind="divided",
            frame_spans=spans,
            cls_key_weight=rearrange(on_cls, "(b t) q -> b t q", t=frames),
            cls_query_row=rearrange(cls_row, "(b t) k -> b t k", t=frames),
        )
