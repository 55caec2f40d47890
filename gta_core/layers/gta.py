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

import contextlib
import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from .attention_maps import DependencePart, FrameSpans, Problem, Recorder, SpatialMaps
from .common import AttentionSoftmax, conv1x1, round_up, zero_init_batchnorm
from .protocol import AttentionBlock, BlockRecord, KnockoutPart, bypass, register_block, zero_parameter
from .self_attention import SpatialAttention, spatial_maps, spatial_options, watch_part


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


def _init_matrix(num_steps: int, groups: int, cross_channel: bool) -> nn.Parameter:
    shape = (groups, groups, num_steps, num_steps) if cross_channel else (groups, num_steps, num_steps)
    if groups == 1 and not cross_channel:
        shape = (num_steps, num_steps)
    summed_over = num_steps * (groups if cross_channel else 1)
    return nn.Parameter(torch.randn(shape) / math.sqrt(summed_over))


class GlobalTemporalAttention(nn.Module):
    """Pixel GTA + Region GTA on (B·T, C, H, W) features, Eq. 5-8."""

    def __init__(
        self,
        channels: int,
        num_steps: int,
        pixel: bool = True,
        region: bool = True,
        cross_channel: bool = True,
        groups: int = 8,
        num_regions: int | None = None,
    ) -> None:
        super().__init__()
        if not (pixel or region):
            raise ValueError("GTA needs Pixel GTA, Region GTA or both")
        self.num_steps = num_steps      # T': the length of every sequence M̂ mixes
        self.groups = groups
        self.cross_channel = cross_channel
        self.num_regions = num_regions or max(1, channels // 8)

        self.pixel_value = self.pixel_matrix = self.pixel_out = None
        if pixel:
            width = round_up(channels / 4, groups)
            self.pixel_value = conv1x1(channels, width)                      # W_V (pixel)
            self.pixel_matrix = _init_matrix(num_steps, groups, cross_channel)  # M̂_P
            self.pixel_out = conv1x1(width, channels, bias=False)            # W_P^O

        self.region_assign = self.region_value = self.region_matrix = self.region_out = None
        self.regions = AttentionSoftmax()  # G_R, normalised over the pixels of each region
        # Hook point for capture: region features after M̂_R, (B·K, T, C_R).
        self.mixed_regions = nn.Identity()
        if region:
            width = round_up(3 * channels / 16, groups)
            self.region_assign = conv1x1(channels, self.num_regions, bias=False)  # W_G
            self.region_value = conv1x1(channels, width)                         # W_V (region)
            self.region_matrix = _init_matrix(num_steps, groups, cross_channel)  # M̂_R
            self.region_out = conv1x1(width, channels, bias=False)                # W_R^O
        self.norm = zero_init_batchnorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        frames = self.num_steps
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


def _as_group_head(matrix: torch.Tensor | None) -> torch.Tensor | None:
    """Any GTA matrix layout -> (G, N_h, T', T')."""
    if matrix is None:
        return None
    matrix = matrix.detach()
    if matrix.dim() == 2:
        return matrix[None, None]
    if matrix.dim() == 3:
        return matrix[:, None]
    return matrix


def _heads(matrix: torch.Tensor) -> int:
    """Heads of a GTA matrix: G for CCMH (G, G, T, T) and per-group (G, T, T), 1 for one (T, T)."""
    return 1 if matrix.dim() == 2 else matrix.shape[0] if matrix.dim() == 3 else matrix.shape[1]


@dataclass
class GTARecord(BlockRecord):
    name: str
    spatial: SpatialMaps
    # Learned matrices as (G, N_h, T', T'): [group, head, output step, input step].
    pixel_matrix: torch.Tensor | None
    region_matrix: torch.Tensor | None
    regions: torch.Tensor | None          # (B, T', K, H, W): G_R per step, each map sums to 1
    # (B, K): each region's contribution to the block's output, after W_R^O and the closing
    # BatchNorm's scale, averaged over steps (see `_region_contribution`).
    region_strength: torch.Tensor | None
    frame_spans: FrameSpans = ()
    kind: str = "gta"

    def regions_by_strength(self, batch: int = 0) -> list[int]:
        """Region indices, strongest first."""
        if self.region_strength is None:
            return []
        return torch.argsort(self.region_strength[batch].float(), descending=True).tolist()

    @staticmethod
    def mean_abs(matrix: torch.Tensor) -> torch.Tensor:
        """(T', T') mean |M̂| over groups and heads, as drawn in the paper's Fig. 5."""
        return matrix.float().abs().mean(dim=(0, 1))

    @property
    def num_steps(self) -> int:
        return self.spatial.num_steps

    def query_grid(self) -> tuple[int, int]:
        return self.spatial.grid

    def _matrices(self) -> dict[str, torch.Tensor]:
        return {label: m for label, m in (("M̂_P", self.pixel_matrix), ("M̂_R", self.region_matrix)) if m is not None}

    def query_slices(self, step: int, y: int, x: int, batch: int = 0) -> dict:
        # GTA's learned rows M̂[t] are the same at every pixel.
        rows = {label: self.mean_abs(matrix)[step] for label, matrix in self._matrices().items()}
        return dict(spatial=self.spatial.map_at(step, y, x, batch), key_grid=self.spatial.key_grid,
                    key_spans=self.spatial.key_spans, global_rows=rows)

    def temporal_matrices(self, batch: int = 0) -> dict[str, torch.Tensor]:
        return {f"mean |{label}|": self.mean_abs(matrix) for label, matrix in self._matrices().items()}

    def head_matrices(self) -> dict[str, torch.Tensor]:
        return {label: matrix.float() for label, matrix in self._matrices().items()}

    def region_maps(self, batch: int = 0):
        if self.regions is None:
            return None
        return self.regions[batch].float(), self.regions_by_strength(batch), self.region_strength[batch].float()

    def query_dependence(self, batch: int = 0) -> dict[str, DependencePart]:
        """SA's rows; M̂ (the same at every pixel and for every clip) analytically query-independent; the
        Region path's key-pixel mixtures (`_region_problems`), with the range of its strength per pixel."""
        parts = {"SA": DependencePart(self.spatial.problems(batch)), "GTA M̂": DependencePart(None, note=GTA_GLOBAL_NOTE)}
        if self.regions is not None:
            assign = self.regions[batch].float().flatten(-2)                 # (T', K, H·W): G_R per step
            parts["GTA regions"] = DependencePart(_region_problems(assign), note=_region_strength_note(assign))
        return parts


GTA_GLOBAL_NOTE = "analytic: M̂ is the same at every pixel and for every clip (input- and query-independent)"


def _region_problems(assign: torch.Tensor) -> list[Problem]:
    """Per (query step t, key step s): pixel p's weights over the key pixels, Σ_k a_k(p) G_R(s)[k, :].

    Pixel p of step t reads region k with weight G_R(t)[k, p] (a(p): those weights normalised), and
    region k at key step s pools the key pixels G_R(s)[k, :]; `assign` is (T', K, H·W)."""
    reads = assign / assign.sum(1, keepdim=True)                       # (T', K, H·W): how p splits over regions
    steps, pixels = assign.shape[0], assign.shape[-1]
    return [Problem(lambda index, t=t, s=s: reads[t][:, index].T @ assign[s], pixels)
            for t in range(steps) for s in range(steps)]


def _region_strength_note(assign: torch.Tensor) -> str:
    strength = assign.sum(1) * assign.shape[-1] / assign.shape[1]     # (T', H·W): (H·W/K)·Σ_k G_R(t)[k, p]
    return (f"the Region path's strength at a pixel, (H·W/K)·Σ_k G_R[k,p], ranges "
            f"{strength.min():.3g}–{strength.max():.3g} (1 everywhere for uniform regions)")


def _region_contribution(gta: GlobalTemporalAttention, regions: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """(B, K) norm of what region k adds to the block's output, averaged over steps.

    Region k adds, at pixel p of step t, s·G_R[k, p] · D W_R^O m_k(t) (s = H·W/K,
    m_k the region's features after M̂_R, D the BatchNorm's γ/√(var + ε)): its
    norm over pixels and channels is s·‖G_R[k]‖ · ‖D W_R^O m_k(t)‖. Measured
    after W_R^O and D, it does not change when a head's M̂_R is scaled by c and
    its W_R^O columns by 1/c (the same function), unlike ‖m_k‖.
    """
    height, width = regions.shape[-2:]
    scale = height * width / gta.num_regions
    norm = gta.norm
    with torch.no_grad():
        out = gta.region_out.weight[:, :, 0, 0]                              # (C, C_R)
        gain = norm.weight / torch.sqrt(norm.running_var + norm.eps)          # D, per output channel
        projected = torch.einsum("oc,bktc->bkto", out, mixed) * gain         # (B, K, T, C)
        spread = regions.flatten(-2).norm(dim=-1).transpose(1, 2)            # (B, K, T): ‖G_R[k]‖ per step
        return (scale * spread * projected.norm(dim=-1)).mean(dim=-1)


class GTABlock(AttentionBlock):
    """SA followed by GTA: the block the paper inserts into R2D (Fig. 2c)."""

    display_name = "GTA"
    paper_reference = "GTA paper §3.3, Eq. 5-8, Fig. 2c"

    def __init__(
        self,
        channels: int,
        num_steps: int,
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
        # GTA, not TA: DecoupledAttention's `.temporal` is TA; this one has its own name. Its weights keep
        # the key "temporal.*" they always had, so shipped checkpoints load strictly (the two hooks below).
        self.global_temporal = GlobalTemporalAttention(
            channels,
            num_steps,
            pixel=pixel,
            region=region,
            cross_channel=cross_channel,
            groups=groups,
            num_regions=num_regions,
        )

        self._register_state_dict_hook(_save_under_old_key)
        self._register_load_state_dict_pre_hook(_load_from_old_key)

    @property
    def temporal(self) -> GlobalTemporalAttention:
        """The name GTA's weights are saved under ("temporal.*"); code says `global_temporal`."""
        return self.global_temporal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_temporal(self.spatial(x))

    def watch(self, recorder: Recorder) -> None:
        watch_part(self.spatial, recorder)
        gta = self.global_temporal
        if gta.region_assign is not None:
            recorder.watch_input(gta)
            recorder.watch_output(gta.regions)
            recorder.watch_output(gta.mixed_regions)

    def make_record(self, recorder: Recorder, name: str, batch: int, spans: FrameSpans, swapped: bool) -> GTARecord:
        gta, steps = self.global_temporal, len(spans)
        regions = strength = None
        if gta.region_assign is not None:
            height, width = recorder.input_shapes[gta][-2:]
            regions = rearrange(
                recorder.outputs[gta.regions], "(b t) k (h w) -> b t k h w", b=batch, t=steps, h=height, w=width
            )
            mixed = rearrange(recorder.outputs[gta.mixed_regions], "(b k) t c -> b k t c", b=batch)
            strength = _region_contribution(gta, regions, mixed)
        return GTARecord(
            name,
            spatial=spatial_maps(self.spatial, recorder, steps),
            pixel_matrix=_as_group_head(gta.pixel_matrix),
            region_matrix=_as_group_head(gta.region_matrix),
            regions=regions,
            region_strength=strength,
            frame_spans=spans,
        )

    def query_dependence_parts(self) -> list[str]:
        return ["SA", "GTA M̂"] + (["GTA regions"] if self.global_temporal.region_assign is not None else [])

    def learned_matrices(self) -> dict[str, torch.Tensor]:
        gta = self.global_temporal
        matrices = {"M̂_P": gta.pixel_matrix, "M̂_R": gta.region_matrix}
        return {label: GTARecord.mean_abs(_as_group_head(m)) for label, m in matrices.items() if m is not None}

    # -- knockouts: SA / GTA bypassed, a branch's W^O zeroed, a head or group of M̂ zeroed, a region dropped
    def _matrix(self, branch: str | None) -> torch.Tensor | None:
        if branch not in ("pixel", "region"):
            raise ValueError(f"branch must be 'pixel' or 'region', got {branch!r}")
        return self.global_temporal.pixel_matrix if branch == "pixel" else self.global_temporal.region_matrix

    def knockout_parts(self) -> list[KnockoutPart]:
        parts: list[KnockoutPart] = [("spatial", None, None), ("temporal", None, None)]
        for branch, part in (("pixel", "pixel"), ("region", "region_branch")):
            matrix = self._matrix(branch)
            if matrix is None:
                continue
            parts.append((part, None, None))
            parts += [("head", k, branch) for k in range(_heads(matrix))]
            if matrix.dim() == 4:  # with CCMH, groups and heads are different axes
                parts += [("group", g, branch) for g in range(matrix.shape[0])]
        if self.global_temporal.region_assign is not None:
            parts += [("region", k, None) for k in range(self.global_temporal.num_regions)]
        return parts

    def knock_out(self, part: str, index: int | None, branch: str | None, undo: contextlib.ExitStack) -> None:
        gta, label = self.global_temporal, f"{part} {'' if index is None else index}".strip()
        if part in ("spatial", "temporal"):            # "temporal": the GTA part, as TA's in DNL
            bypass(self.spatial if part == "spatial" else self.global_temporal, undo)
        elif part in ("pixel", "region_branch"):
            out = gta.pixel_out if part == "pixel" else gta.region_out
            if out is None:
                raise ValueError(f"this block has no {part.replace('_branch', '')} GTA")
            zero_parameter(out.weight, slice(None), undo)
        elif part in ("head", "group"):
            matrix = self._matrix(branch)
            if matrix is None:
                raise ValueError(f"this block has no {branch} GTA")
            count = _heads(matrix) if part == "head" else (matrix.shape[0] if matrix.dim() > 2 else 1)
            if not 0 <= index < count:
                raise ValueError(f"{branch} {label}: index out of 0..{count - 1}")
            if matrix.dim() == 2:
                zero_parameter(matrix, slice(None), undo)
            elif matrix.dim() == 3 or part == "group":
                zero_parameter(matrix, index, undo)                        # (G, ...) row g
            else:
                zero_parameter(matrix, (slice(None), index), undo)         # (G, N_h, T, T): head k of every group
        elif part == "region":
            self._drop_region(index, undo)
        else:
            super().knock_out(part, index, branch, undo)

    def _drop_region(self, index: int | None, undo: contextlib.ExitStack) -> None:
        gta = self.global_temporal
        if gta.region_assign is None:
            raise ValueError("this block has no Region GTA")
        if not 0 <= index < gta.num_regions:
            raise ValueError(f"region {index}: index out of 0..{gta.num_regions - 1}")
        regions = gta.num_regions

        def drop_region(module, args, output):
            # output: (B·K, T, C_R), regions innermost in the batch axis
            mask = torch.ones(regions, 1, 1, dtype=output.dtype, device=output.device)
            mask[index] = 0
            return (rearrange(output, "(b k) t c -> b k t c", k=regions) * mask).flatten(0, 1)

        undo.callback(gta.mixed_regions.register_forward_hook(drop_region).remove)


def _save_under_old_key(module, state_dict, prefix, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "global_temporal.")]:
        state_dict[prefix + "temporal." + key[len(prefix + "global_temporal."):]] = state_dict.pop(key)


def _load_from_old_key(state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "temporal.")]:
        state_dict[prefix + "global_temporal." + key[len(prefix + "temporal."):]] = state_dict.pop(key)


register_block("gta", lambda config, c, steps: GTABlock(
    c, steps, pixel=config.gta_pixel, region=config.gta_region, cross_channel=config.gta_cross_channel,
    groups=config.gta_groups, num_regions=config.gta_num_regions, **spatial_options(config),
))
