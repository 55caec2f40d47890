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
the patch grid. Attention weights go through named softmax modules (`attend`)
with the heads folded into the batch, so `gta_core.records` reads them with
hooks: TA (B·h·w·heads, T, T), SA (B·T·heads, 1 + h·w, 1 + h·w).
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .common import AttentionSoftmax, attend


class MultiHeadAttention(nn.Module):
    """softmax(q kᵀ / √d) v per head, then the output projection: HF's TimeSformerAttention."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attend = AttentionSoftmax()
        self.out = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # tokens (N, L, C) -> q, k, v (N·heads, L, C/heads)
        q, k, v = rearrange(self.qkv(tokens), "n l (three h d) -> three (n h) l d", three=3, h=self.heads)
        context = attend(q, k, v, q.shape[-1] ** -0.5, self.attend)
        return self.out(rearrange(context, "(n h) l d -> n l (h d)", h=self.heads))


class DividedSpaceTimeBlock(nn.Module):
    """One TimeSformer layer on (CLS (B, 1, C), patches (B, T, h·w, C)) -> the same shapes."""

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
