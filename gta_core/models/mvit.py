"""torchvision's MViTv2 (`mvit_v2_s`; Li et al. 2022, Fan et al. 2021) as a VideoNet backbone, for import.

Laid out with torchvision 0.28.0's module names (models/video/mvit.py), so
its state dicts load by adding `backbone.` (its classifier `head.1` is our
`head`):

* `conv_proj`: a 3×7×7 Conv3d, stride (2, 4, 4), padding (1, 3, 3), patchifies
  the clip (16×224² -> 8×56×56 tokens of 96 channels);
* `pos_encoding.class_token`: the CLS token put first; v2_s has no absolute
  position table (its positions are the relative bias of every layer);
* `blocks.i` (torchvision's `MultiscaleBlock` with proj_after_attn):
  x' = skip(x) + attn(norm1(x)), where skip is x, or `project`(norm1(x)) when
  the width changes, max-pooled 1×3×3 at stride (1, 2, 2) where the queries
  are pooled (CLS kept); then x' + mlp(norm2(x')), the MLP 4× wide with GELU
  (`mlp.0`, `mlp.3`). `attn` is layers/multiscale.MultiscaleAttention;
* `norm` (LayerNorm, eps 1e-6) and the CLS token to the classifier.

Each block is described by (heads, in width, out width, query stride, key
stride), strides spatial (time is never pooled in v2_s). `V2_S_BLOCKS` is
mvit_v2_s's table; the importer reads others off a state dict. Its
relative-position tables are sized for `trained_size` (frames, side): 16×224²
for mvit_v2_s. Torchvision runs only at that size (its token grid is fixed
at construction); ours takes the grid from the clip and resizes the tables
linearly as torchvision's own code would, unchecked against it.

Stochastic depth and dropout are training-only (identity in eval): not built.
Every layer's attention is a record (`blocks.i`); each time step is 2 frames.
"""
from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..layers.multiscale import LAYER_NORM_EPS, MultiscaleAttention
from .resnet3d import frame_spans

PATCH_KERNEL, PATCH_STRIDE, PATCH_PADDING = (3, 7, 7), (2, 4, 4), (1, 3, 3)
TIME_STRIDE = PATCH_STRIDE[0]
TRAINED_SIZE = (16, 224)        # MViT_V2_S_Weights' min_temporal_size and min_size
# mvit_v2_s: (heads, in width, out width, query stride, key stride) per block (torchvision's config table).
V2_S_BLOCKS = (
    (1, 96, 96, 1, 8), (2, 96, 192, 2, 4), (2, 192, 192, 1, 4), (4, 192, 384, 2, 2),
    *((4, 384, 384, 1, 2),) * 10,
    (8, 384, 768, 2, 1), (8, 768, 768, 1, 1),
)


def _with_cls(pool, x: torch.Tensor, thw: tuple[int, int, int]) -> torch.Tensor:
    """`pool` applied to the patch tokens of x (B, 1 + T·H·W, C), the CLS token kept as it is."""
    grid = rearrange(x[:, 1:], "b (t y x) c -> b c t y x", t=thw[0], y=thw[1], x=thw[2])
    return torch.cat([x[:, :1], rearrange(pool(grid), "b c t y x -> b (t y x) c")], dim=1)


class MultiscaleBlock(nn.Module):
    def __init__(self, block: tuple[int, int, int, int, int], input_size: tuple[int, int]) -> None:
        super().__init__()
        heads, in_dim, out_dim, q_stride, kv_stride = block
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(in_dim, eps=LAYER_NORM_EPS)
        self.attn = MultiscaleAttention(in_dim, out_dim, heads, q_stride, kv_stride, input_size)
        self.norm2 = nn.LayerNorm(out_dim, eps=LAYER_NORM_EPS)
        # torchvision's ops.MLP: Linear, GELU, Dropout, Linear, Dropout (the dropouts hold no weights).
        self.mlp = nn.Sequential(nn.Linear(out_dim, 4 * out_dim), nn.GELU(), nn.Identity(), nn.Linear(4 * out_dim, out_dim))
        self.project = nn.Linear(in_dim, out_dim) if in_dim != out_dim else None

    def forward(self, x: torch.Tensor, thw: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
        normed = self.norm1(x)
        attended, pooled_thw = self.attn(normed, thw)
        skip = x if self.project is None else self.project(normed)
        if self.q_stride > 1:
            stride = (1, self.q_stride, self.q_stride)
            kernel = tuple(s + 1 if s > 1 else s for s in stride)
            skip = _with_cls(lambda g: F.max_pool3d(g, kernel, stride, tuple(k // 2 for k in kernel)), skip, thw)
        x = skip + attended
        return x + self.mlp(self.norm2(x)), pooled_thw


class ClassToken(nn.Module):
    """torchvision's PositionalEncoding with rel_pos_embed: the CLS token alone."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.class_token.expand(tokens.shape[0], 1, -1), tokens], dim=1)


class MViT(nn.Module):
    """(B, 3, T, H, W) -> [(B, C, 1, 1, 1)]: the final CLS token after `norm`, as a map for VideoNet's head."""

    def __init__(self, num_frames: int, blocks=V2_S_BLOCKS, trained_size: tuple[int, int] = TRAINED_SIZE) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.conv_proj = nn.Conv3d(3, blocks[0][1], PATCH_KERNEL, PATCH_STRIDE, PATCH_PADDING)
        self.pos_encoding = ClassToken(blocks[0][1])
        # The (steps, side) each block's tables are sized for: torchvision's input_size, pooled as it goes.
        steps, side = trained_size[0] // PATCH_STRIDE[0], trained_size[1] // PATCH_STRIDE[1]
        layers = []
        for block in blocks:
            layers.append(MultiscaleBlock(tuple(block), (steps, side)))
            side //= block[3]
        self.blocks = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(blocks[-1][2], eps=LAYER_NORM_EPS)
        self.out_channels = (blocks[-1][2],)

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        patches = self.conv_proj(clip)
        thw = tuple(patches.shape[2:])
        x = self.pos_encoding(rearrange(patches, "b c t y x -> b (t y x) c"))
        for block in self.blocks:
            x, thw = block(x, thw)
        return [rearrange(self.norm(x)[:, 0], "b c -> b c 1 1 1")]

    def named_units(self) -> Iterator[tuple[str, SimpleNamespace]]:
        """Every layer's attention is a block (VideoNet.temporal_blocks reads `.attention`)."""
        for index, block in enumerate(self.blocks):
            yield f"blocks.{index}", SimpleNamespace(attention=block.attn)

    def time_spans(self, block: str) -> tuple[tuple[int, int], ...]:
        return frame_spans(self.num_frames, TIME_STRIDE)

    def forward_from_block(self, block: str, block_input: torch.Tensor) -> list[torch.Tensor]:
        raise ValueError("knockouts resume from a convolutional block's input; MViT's layers take tokens")
