"""TimeSformer (Bertasius et al. 2021, divided space-time attention) as a VideoNet backbone.

Laid out as HF transformers' `TimesformerModel` (imported by
`importers/hf_timesformer.py`): a p×p patch embedding per frame, a CLS token,
learned position (per patch) and time (per frame) embeddings, L
`DividedSpaceTimeBlock`s (layers/divided.py) and a final LayerNorm; the
classifier (VideoNet's head) reads the CLS token.

Every layer is an attention block of the model (`layer.0` ... `layer.{L-1}`,
what capture records), each time step one input frame. A clip whose patch
grid differs from the trained one gets its position table resized by
nearest-neighbour interpolation, and a clip of another length its time
table, as HF does.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..layers.divided import DividedSpaceTimeBlock
from .resnet3d import frame_spans


class TimeSformer(nn.Module):
    """(B, 3, T, H, W) -> [(B, C, 1, 1, 1)]: the final CLS token, as a 1×1×1 map for VideoNet's head."""

    def __init__(
        self, num_frames: int, image_size: int, patch_size: int, dim: int, layers: int, heads: int, mlp_dim: int,
        eps: float = 1e-6, qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch_size}")
        self.num_frames, self.patch_size = num_frames, patch_size
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, 1 + (image_size // patch_size) ** 2, dim))  # CLS, then patches
        self.time = nn.Parameter(torch.zeros(1, num_frames, dim))
        self.layers = nn.ModuleList(DividedSpaceTimeBlock(dim, heads, mlp_dim, eps, qkv_bias) for _ in range(layers))
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.out_channels = (dim,)

    def _position(self, height: int, width: int) -> torch.Tensor:
        """(1, 1 + h·w, C): the trained square table, resized (nearest) when the patch grid is h×w."""
        if 1 + height * width == self.position.shape[1]:
            return self.position
        side = math.isqrt(self.position.shape[1] - 1)
        table = rearrange(self.position[:, 1:], "1 (y x) c -> 1 c y x", y=side)
        table = rearrange(F.interpolate(table, size=(height, width), mode="nearest"), "1 c y x -> 1 (y x) c")
        return torch.cat([self.position[:, :1], table], dim=1)

    def _time(self, frames: int) -> torch.Tensor:
        """(1, T, C): the time table, resized (nearest) for another clip length."""
        if frames == self.time.shape[1]:
            return self.time
        return F.interpolate(self.time.transpose(1, 2), size=frames, mode="nearest").transpose(1, 2)

    def embed(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(B, 3, T, H, W) -> CLS (B, 1, C), patches (B, T, h·w, C) and the patch grid (h, w)."""
        frames = clip.shape[2]
        patches = self.patch_embed(rearrange(clip, "b c t h w -> (b t) c h w"))        # (B·T, C, h, w)
        height, width = patches.shape[-2:]
        position = self._position(height, width)
        patches = rearrange(patches, "(b t) c h w -> b t (h w) c", t=frames) + position[:, None, 1:]
        patches = patches + self._time(frames)[:, :, None]
        cls = self.cls_token + position[:, :1]
        return cls.expand(clip.shape[0], -1, -1), patches, (height, width)

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        cls, patches, grid = self.embed(clip)
        for layer in self.layers:
            cls, patches = layer(cls, patches, grid)
        return [rearrange(self.norm(cls), "b 1 c -> b c 1 1 1")]

    def named_units(self) -> Iterator[tuple[str, SimpleNamespace]]:
        """Every layer is an attention block (VideoNet.temporal_blocks reads `.attention`)."""
        for index, layer in enumerate(self.layers):
            yield f"layer.{index}", SimpleNamespace(attention=layer)

    def time_spans(self, block: str) -> tuple[tuple[int, int], ...]:
        return frame_spans(self.num_frames, 1)

    def forward_from_block(self, block: str, block_input: torch.Tensor) -> list[torch.Tensor]:
        raise ValueError("knockouts resume from a convolutional block's input; TimeSformer's layers take tokens")
