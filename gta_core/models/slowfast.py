"""SlowFast-R50 (Feichtenhofer et al. 2019), laid out as PySlowFast's `SlowFast` model.

Two 3D ResNet-50 pathways see the same clip: the Fast pathway every frame
with β = 1/8 of the channels and temporal convolutions in every stage, the
Slow pathway every α-th frame with full width and temporal convolutions only
in res4 and res5 (PySlowFast's `_TEMPORAL_KERNEL_BASIS["slowfast"]`). After the
stem and res2-res4, a lateral kα×1×1 convolution with temporal stride α
(`FuseFastToSlow`: 2βC channels, k = 7) maps Fast features to the Slow
pathway's time steps and is concatenated to them. The head averages each
pathway over space-time and classifies their concatenation (2048 + 256).

The model takes the whole clip (B, 3, T, H, W) and picks the Slow pathway's
T/α frames inside, by `slow_sampling`:

* "stride" (default): frames 0, α, 2α, ... MMAction2's `ResNet3dSlowFast`
  resamples the same way (nearest interpolation by 1/τ). Slow step i stands
  for frames [αi, αi+α).
* "linspace": PySlowFast's `torch.linspace(0, T-1, T/α).long()`. The two
  differ by up to α-1 frames, most at the end of the clip (for 64 → 16 with
  α = 4: ...54, 58, 63 against ...52, 56, 60, so 3 frames). Slow step i
  stands for frames [index_i, index_{i+1}), the last up to T: spans of
  unequal length.

Fast step i stands for frame i.

Switches where MMAction2's SlowFast differs from PySlowFast (read by the
importer, `importers/slowfast.py`): α (`speed_ratio` = `resample_rate`: 8 for
4×16×1, 4 for 8×8×1), the lateral kernel (`fusion_kernel` 5 or 7), and the
lateral as a bare convolution (MMAction2's `lateral_norm=False`) instead of
conv + BN + ReLU. Without the Fast pathway (`fast_pathway=False`, α = 1) the
Slow pathway alone is MMAction2's SlowOnly-R50 (`ResNet3dSlowOnly`).

Attention blocks (NL, DNL, GTA, ...) sit on the Slow pathway only: the
paper's 41.4 − 34.0 M is exactly five Slow-pathway NL blocks (2 in res3,
3 in res4, after every other residual block, as PySlowFast's NL configs).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from einops import rearrange
from torch import nn

from .resnet3d import (
    BLOCKS_PER_STAGE_R50,
    STAGES,
    Bottleneck3D,
    ResidualUnit3D,
    TemporalBlockFactory,
    conv_bn,
    frame_spans,
    make_stage,
)

ALPHA = 4                 # frame-rate ratio Fast : Slow (PySlowFast SLOWFAST.ALPHA for 16×8 and 8×8)
BETA_INV = 8              # channel ratio Slow : Fast
FUSION_CHANNEL_RATIO = 2  # lateral output channels = 2 × Fast channels
FUSION_KERNEL = 7         # lateral temporal kernel (SLOWFAST.FUSION_KERNEL_SZ)
# Temporal kernel of the stem and of every residual block per stage (PySlowFast's basis).
SLOW_KERNELS = {"stem": 1, "res2": 1, "res3": 1, "res4": 3, "res5": 3}
FAST_KERNELS = {"stem": 5, "res2": 3, "res3": 3, "res4": 3, "res5": 3}
PATHWAYS = ("slow", "fast")
SLOW_SAMPLINGS = ("stride", "linspace")


def slow_indices(num_frames: int, alpha: int, sampling: str = "stride") -> list[int]:
    """The input frames the Slow pathway sees: every α-th ("stride") or PySlowFast's linspace."""
    count = num_frames // alpha
    if sampling == "linspace":
        return torch.linspace(0, num_frames - 1, count).long().tolist()
    if sampling != "stride":
        raise ValueError(f"unknown slow_sampling {sampling!r}; choose one of {SLOW_SAMPLINGS}")
    return list(range(0, count * alpha, alpha))


def stem(out_channels: int, temporal_kernel: int) -> nn.Sequential:
    """conv kt×7×7 (spatial stride 2) + BN + ReLU, then max-pool 1×3×3 (spatial stride 2)."""
    return nn.Sequential(
        conv_bn(3, out_channels, (temporal_kernel, 7, 7), (1, 2, 2), (temporal_kernel // 2, 3, 3)),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
    )


class FuseFastToSlow(nn.Module):
    """Lateral connection: Fast features, time-strided by α, concatenated to the Slow ones.

    PySlowFast's lateral is conv + BN + ReLU; MMAction2's (`lateral_norm=False`) the convolution alone.
    """

    def __init__(self, fast_channels: int, alpha: int = ALPHA, kernel: int = FUSION_KERNEL, norm: bool = True) -> None:
        super().__init__()
        out_channels, size, stride, padding = fast_channels * FUSION_CHANNEL_RATIO, (kernel, 1, 1), (alpha, 1, 1), (kernel // 2, 0, 0)
        self.lateral = (
            conv_bn(fast_channels, out_channels, size, stride, padding)
            if norm else nn.Sequential(nn.Conv3d(fast_channels, out_channels, size, stride, padding, bias=False))
        )

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, self.lateral(fast)], dim=1)


class SlowFast(nn.Module):
    """(B, 3, T, H, W) -> [(B, 2048, T/α, H/32, W/32), (B, 256, T, H/32, W/32)] ([the first] without Fast)."""

    def __init__(
        self,
        width_multiplier: float = 1.0,
        num_frames: int = 64,
        insert_after: dict[str, tuple[int, ...]] | None = None,
        make_block: TemporalBlockFactory | None = None,
        alpha: int = ALPHA,
        fusion_kernel: int = FUSION_KERNEL,
        lateral_norm: bool = True,
        slow_sampling: str = "stride",
        fast_pathway: bool = True,
    ) -> None:
        super().__init__()
        if num_frames % alpha:
            raise ValueError(f"SlowFast needs a clip length divisible by α = {alpha}, got {num_frames}")
        insert_after = insert_after or {}
        self.num_frames, self.alpha, self.has_fast = num_frames, alpha, fast_pathway
        self.register_buffer("slow_index", torch.tensor(slow_indices(num_frames, alpha, slow_sampling)), persistent=False)
        slow_base = max(8, int(round(64 * width_multiplier)))
        fast_base = max(2, slow_base // BETA_INV)
        fuse = dict(alpha=alpha, kernel=fusion_kernel, norm=lateral_norm)
        self.slow_stem = stem(slow_base, SLOW_KERNELS["stem"])
        if fast_pathway:
            self.fast_stem = stem(fast_base, FAST_KERNELS["stem"])
            self.fuse_stem = FuseFastToSlow(fast_base, **fuse)
        lateral = FUSION_CHANNEL_RATIO if fast_pathway else 0   # lateral channels per Fast channel
        slow_in, fast_in = slow_base + fast_base * lateral, fast_base
        for stage_index, (name, count) in enumerate(zip(STAGES, BLOCKS_PER_STAGE_R50)):
            stride = 1 if stage_index == 0 else 2
            slow_width, fast_width = slow_base * 2**stage_index, fast_base * 2**stage_index
            self.add_module(f"slow_{name}", make_stage(
                slow_in, slow_width, count, stride, (SLOW_KERNELS[name],) * count,
                insert_after.get(name, ()), make_block, num_frames // alpha,
            ))
            slow_out, fast_out = slow_width * Bottleneck3D.expansion, fast_width * Bottleneck3D.expansion
            if fast_pathway:
                self.add_module(f"fast_{name}", make_stage(
                    fast_in, fast_width, count, stride, (FAST_KERNELS[name],) * count, (), None, num_frames,
                ))
                if name != "res5":
                    self.add_module(f"fuse_{name}", FuseFastToSlow(fast_out, **fuse))
            slow_in, fast_in = slow_out + fast_out * lateral, fast_out
        self.out_channels = (slow_out, fast_out) if fast_pathway else (slow_out,)

    @property
    def pathways(self) -> tuple[str, ...]:
        return PATHWAYS if self.has_fast else ("slow",)

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        slow = self.slow_stem(clip.index_select(2, self.slow_index))
        if not self.has_fast:
            return [self.slow_res5(self.slow_res4(self.slow_res3(self.slow_res2(slow))))]
        fast = self.fast_stem(clip)
        slow = self.fuse_stem(slow, fast)
        return self.run_stages(slow, fast, STAGES)

    def run_stages(self, slow: torch.Tensor, fast: torch.Tensor, stages) -> list[torch.Tensor]:
        for name in stages:
            slow, fast = getattr(self, f"slow_{name}")(slow), getattr(self, f"fast_{name}")(fast)
            if name != "res5":
                slow = getattr(self, f"fuse_{name}")(slow, fast)
        return [slow, fast]

    def named_units(self) -> Iterator[tuple[str, ResidualUnit3D]]:
        for pathway in self.pathways:
            for stage in STAGES:
                for index, unit in enumerate(getattr(self, f"{pathway}_{stage}")):
                    yield f"{pathway}.{stage}.{index}", unit

    def time_spans(self, block: str) -> tuple[tuple[int, int], ...]:
        if not block.startswith("slow."):
            return frame_spans(self.num_frames, 1)
        starts = self.slow_index.tolist()
        return tuple(zip(starts, starts[1:] + [self.num_frames]))

    def fast_features(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """The Fast pathway's output after each stage: what the laterals after a Slow block read."""
        if not self.has_fast:
            return {}
        fast, features = self.fast_stem(clip), {}
        for name in STAGES:
            fast = features[name] = getattr(self, f"fast_{name}")(fast)
        return features

    def forward_from_block(self, block: str, block_input: torch.Tensor, fast: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Features when Slow block `block` (e.g. "slow.res3.1") receives `block_input` (B·T/α, C, H, W).

        The later laterals need the Fast pathway's features, which `block_input`
        does not hold: `fast` is `fast_features(clip)`, computed once for a
        sweep (attention blocks sit on the Slow pathway, so knocking one out
        leaves the Fast pathway unchanged).
        """
        pathway, stage, index = block.split(".")
        if pathway != "slow":
            raise ValueError(f"attention blocks sit on the Slow pathway, not {block!r}")
        units = getattr(self, f"slow_{stage}")
        slow = rearrange(units[int(index)].attention(block_input), "(b t) c h w -> b c t h w", t=self.num_frames // self.alpha)
        for unit in units[int(index) + 1:]:
            slow = unit(slow)
        for name in STAGES[STAGES.index(stage):]:
            if name != stage:
                slow = getattr(self, f"slow_{name}")(slow)
            if name != "res5" and self.has_fast:
                slow = getattr(self, f"fuse_{name}")(slow, fast[name])
        return [slow, fast["res5"]] if self.has_fast else [slow]
