"""Global Temporal Attention (paper §3.3, Eq. 5-8).

GTA replaces TA's pairwise, input-dependent T×T attention with learned,
input-independent T×T matrices M̂, applied at two spatial granularities:

    Y = X + BN(A_P W_P^O + A_R W_R^O)                         (Eq. 5)
    A_P = M̂_P V_P,       A_R = G_Rᵀ (M̂_R V_R)                 (Eq. 6)
    G_R(t) = W_G X(t)ᵀ ∈ R^{K×HW}

with cross-channel multi-head mixing (CCMH, Eq. 7-8): the value's channels
are split into G groups, head k of the output is Σ_g M̂_g^k V_g, and with
N_h = G heads the heads concatenate back to the value width.

Where the paper is silent we chose (and why):

* Widths. GTA is sized to cost what TA costs (Table 6: + SA + TA and
  + SA + GTA are both 31.2 M). GTA needs no query/key, so Pixel GTA keeps TA's
  value/output width C/4 and the freed query/key budget pays for Region GTA:
  W_G (K×C with K = C/8, as in the paper) plus a value/output pair of width
  3C/16. Widths are rounded up to a multiple of G so CCMH splits evenly.
  With these, R2D-50 + GTA has 31.27 M parameters and 50.5 GFLOPs
  (paper: 31.2 M, 50.2 G).
* Normalisation of G_R: a softmax over the H·W pixels of each region, so a
  region's feature is a weighted mean of pixels (its scale does not grow with
  H·W, the maps are drawable as the paper's Fig. 3/6, and a model runs at any
  resolution). Mapping back uses G_Rᵀ scaled by H·W/K, which gives every
  pixel the plain mean of region features when the regions are uniform.
* V_R = G_R (X W_V^R): the value projection is applied per pixel and then
  pooled; by linearity this equals projecting the pooled region features.
* Init of M̂: N(0, 1/(T·G)) ("randomly initialised" in the paper), so an
  output of Σ_g over G groups and T frames starts with the variance of V.
* One BatchNorm (zero-init γ) closes the block, as in NL, so a fresh block
  is the identity.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from .common import AttentionSoftmax, conv1x1, round_up, zero_init_batchnorm
from .self_attention import SpatialAttention


def temporal_mix(values: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply learned temporal matrices to sequences of values.

    values: (N, T, C) — N independent samples (pixels or regions) of T steps.
    matrix: (T, T) for one shared matrix, (G, T, T) for per-group heads, or
            (G, G, T, T) indexed [group g, head k] for cross-channel multi-head.
    Row t of a matrix holds the weights of output step t over input steps.
    """
    samples, _, channels = values.shape
    if matrix.dim() == 2:
        # One matrix for every channel: (T, T) x (T, N·C) -> (T, N·C), one GEMM.
        mixed = matrix @ rearrange(values, "n s c -> s (n c)")
        return rearrange(mixed, "t (n c) -> n t c", n=samples)
    groups = matrix.shape[0]
    grouped = rearrange(values, "n s (g c) -> n s g c", g=groups)
    if matrix.dim() == 3:
        # Multi-head without channel interaction: group g uses its own M̂_g.
        mixed = torch.einsum("gts,nsgc->ntgc", matrix, grouped)
        return rearrange(mixed, "n t g c -> n t (g c)")
    # CCMH, Eq. 7-8: head k = Σ_g M̂_g^k V_g, and the N_h = G heads are
    # concatenated along channels to give back the value width. Written as one
    # GEMM, ((k t), (g s)) x ((g s), (n c)), which is ~10x faster on CPU than
    # the equivalent einsum's batched small matmuls.
    weights = rearrange(matrix, "g k t s -> (k t) (g s)")
    mixed = weights @ rearrange(grouped, "n s g c -> (g s) (n c)")
    return rearrange(mixed, "(k t) (n c) -> n t (k c)", k=groups, n=samples)


def _init_matrix(num_frames: int, groups: int, cross_channel: bool) -> nn.Parameter:
    shape = (groups, groups, num_frames, num_frames) if cross_channel else (groups, num_frames, num_frames)
    if groups == 1 and not cross_channel:
        shape = (num_frames, num_frames)
    summed_over = num_frames * (groups if cross_channel else 1)
    return nn.Parameter(torch.randn(shape) / math.sqrt(summed_over))


class GlobalTemporalAttention(nn.Module):
    """Pixel GTA + Region GTA on (B·T, C, H, W) features, Eq. 5-8."""

    def __init__(
        self,
        channels: int,
        num_frames: int,
        pixel: bool = True,
        region: bool = True,
        cross_channel: bool = True,
        groups: int = 8,
        num_regions: int | None = None,
    ) -> None:
        super().__init__()
        if not (pixel or region):
            raise ValueError("GTA needs Pixel GTA, Region GTA or both")
        self.num_frames = num_frames
        self.groups = groups
        self.cross_channel = cross_channel
        self.num_regions = num_regions or max(1, channels // 8)

        self.pixel_value = self.pixel_matrix = self.pixel_out = None
        if pixel:
            width = round_up(channels / 4, groups)
            self.pixel_value = conv1x1(channels, width)                      # W_V (pixel)
            self.pixel_matrix = _init_matrix(num_frames, groups, cross_channel)  # M̂_P
            self.pixel_out = conv1x1(width, channels, bias=False)            # W_P^O

        self.region_assign = self.region_value = self.region_matrix = self.region_out = None
        self.regions = AttentionSoftmax()  # G_R, normalised over the pixels of each region
        # Hook point for capture: region features after M̂_R, (B·K, T, C_R).
        self.mixed_regions = nn.Identity()
        if region:
            width = round_up(3 * channels / 16, groups)
            self.region_assign = conv1x1(channels, self.num_regions, bias=False)  # W_G
            self.region_value = conv1x1(channels, width)                         # W_V (region)
            self.region_matrix = _init_matrix(num_frames, groups, cross_channel)  # M̂_R
            self.region_out = conv1x1(width, channels, bias=False)                # W_R^O
        self.norm = zero_init_batchnorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        frames = self.num_frames
        update = 0
        if self.pixel_value is not None:
            # Every pixel is a sample along T: (B·H·W, T, C_P).
            v = rearrange(self.pixel_value(x), "(b t) c h w -> (b h w) t c", t=frames)
            mixed = temporal_mix(v, self.pixel_matrix)
            mixed = rearrange(mixed, "(b h w) t c -> (b t) c h w", h=height, w=width)
            update = update + self.pixel_out(mixed)
        if self.region_assign is not None:
            # G_R(t) = W_G X(t)ᵀ: (B·T, K, H·W), each region a distribution over pixels.
            assignment = self.regions(rearrange(self.region_assign(x), "bt k h w -> bt k (h w)"))
            v = rearrange(self.region_value(x), "bt c h w -> bt (h w) c")
            # (B·T, K, H·W) x (B·T, H·W, C_R) -> (B·T, K, C_R): region features per frame
            region_values = assignment @ v
            region_values = rearrange(region_values, "(b t) k c -> (b k) t c", t=frames)
            mixed = self.mixed_regions(temporal_mix(region_values, self.region_matrix))
            mixed = rearrange(mixed, "(b k) t c -> (b t) k c", k=self.num_regions)
            # G_Rᵀ back to pixels: (B·T, H·W, K) x (B·T, K, C_R) -> (B·T, H·W, C_R)
            scale = (height * width) / self.num_regions
            pixels = assignment.transpose(1, 2) @ mixed * scale
            pixels = rearrange(pixels, "bt (h w) c -> bt c h w", h=height, w=width)
            update = update + self.region_out(pixels)
        return x + self.norm(update)


class GTABlock(nn.Module):
    """SA followed by GTA: the block the paper inserts into R2D (Fig. 2c)."""

    def __init__(
        self,
        channels: int,
        num_frames: int,
        pixel: bool = True,
        region: bool = True,
        cross_channel: bool = True,
        groups: int = 8,
        num_regions: int | None = None,
        spatial_pool_first: bool = False,
        spatial_pool_keys: bool = True,
        spatial_pool_ceil: bool = True,
    ) -> None:
        super().__init__()
        self.spatial = SpatialAttention(
            channels, pool_keys=spatial_pool_keys, pool_first=spatial_pool_first, pool_ceil=spatial_pool_ceil
        )
        self.temporal = GlobalTemporalAttention(
            channels,
            num_frames,
            pixel=pixel,
            region=region,
            cross_channel=cross_channel,
            groups=groups,
            num_regions=num_regions,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spatial(x))
