"""SlowFast-R50 (Feichtenhofer et al. 2019), laid out as PySlowFast's `SlowFast` model.

Two 3D ResNet-50 pathways see the same clip: the Fast pathway every frame
with β = 1/8 of the channels and temporal convolutions in every stage, the
Slow pathway every α-th frame with full width and temporal convolutions only
in res4 and res5 (PySlowFast's `_TEMPORAL_KERNEL_BASIS["slowfast"]`). After the
stem and res2-res4, a lateral kα×1×1 convolution with temporal stride α
(`FuseFastToSlow`: 2βC channels, k = 7) maps Fast features to the Slow
pathway's time steps and is concatenated to them. The head averages each
pathway over space-time and classifies their concatenation (2048 + 256).

The model takes the whole clip (B, 3, T, H, W); the Slow pathway is sampled
inside as frames 0, α, 2α, ... (MMAction2's SlowFast resamples the same way;
PySlowFast's data loader takes `linspace(0, T-1, T/α)`, up to one frame
later). So Slow step i stands for frames [αi, αi+α) and Fast step i for frame i.

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


def stem(out_channels: int, temporal_kernel: int) -> nn.Sequential:
    """conv kt×7×7 (spatial stride 2) + BN + ReLU, then max-pool 1×3×3 (spatial stride 2)."""
    return nn.Sequential(
        conv_bn(3, out_channels, (temporal_kernel, 7, 7), (1, 2, 2), (temporal_kernel // 2, 3, 3)),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
    )


class FuseFastToSlow(nn.Module):
    """Lateral connection: Fast features, time-strided by α, concatenated to the Slow ones."""

    def __init__(self, fast_channels: int) -> None:
        super().__init__()
        self.lateral = conv_bn(
            fast_channels, fast_channels * FUSION_CHANNEL_RATIO, (FUSION_KERNEL, 1, 1),
            (ALPHA, 1, 1), (FUSION_KERNEL // 2, 0, 0),
        )

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        return torch.cat([slow, self.lateral(fast)], dim=1)


class SlowFast(nn.Module):
    """(B, 3, T, H, W) -> [(B, 2048, T/α, H/32, W/32), (B, 256, T, H/32, W/32)]."""

    def __init__(
        self,
        width_multiplier: float = 1.0,
        num_frames: int = 64,
        insert_after: dict[str, tuple[int, ...]] | None = None,
        make_block: TemporalBlockFactory | None = None,
    ) -> None:
        super().__init__()
        if num_frames % ALPHA:
            raise ValueError(f"SlowFast needs a clip length divisible by α = {ALPHA}, got {num_frames}")
        insert_after = insert_after or {}
        self.num_frames = num_frames
        slow_base = max(8, int(round(64 * width_multiplier)))
        fast_base = max(2, slow_base // BETA_INV)
        self.slow_stem = stem(slow_base, SLOW_KERNELS["stem"])
        self.fast_stem = stem(fast_base, FAST_KERNELS["stem"])
        self.fuse_stem = FuseFastToSlow(fast_base)
        slow_in = slow_base + fast_base * FUSION_CHANNEL_RATIO
        fast_in = fast_base
        for stage_index, (name, count) in enumerate(zip(STAGES, BLOCKS_PER_STAGE_R50)):
            stride = 1 if stage_index == 0 else 2
            slow_width, fast_width = slow_base * 2**stage_index, fast_base * 2**stage_index
            self.add_module(f"slow_{name}", make_stage(
                slow_in, slow_width, count, stride, (SLOW_KERNELS[name],) * count,
                insert_after.get(name, ()), make_block, num_frames // ALPHA,
            ))
            self.add_module(f"fast_{name}", make_stage(
                fast_in, fast_width, count, stride, (FAST_KERNELS[name],) * count, (), None, num_frames,
            ))
            slow_out, fast_out = slow_width * Bottleneck3D.expansion, fast_width * Bottleneck3D.expansion
            if name != "res5":
                self.add_module(f"fuse_{name}", FuseFastToSlow(fast_out))
                slow_in = slow_out + fast_out * FUSION_CHANNEL_RATIO
            fast_in = fast_out
        self.out_channels = (slow_out, fast_out)

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        slow, fast = self.slow_stem(clip[:, :, ::ALPHA]), self.fast_stem(clip)
        slow = self.fuse_stem(slow, fast)
        return self.run_stages(slow, fast, STAGES)

    def run_stages(self, slow: torch.Tensor, fast: torch.Tensor, stages) -> list[torch.Tensor]:
        for name in stages:
            slow, fast = getattr(self, f"slow_{name}")(slow), getattr(self, f"fast_{name}")(fast)
            if name != "res5":
                slow = getattr(self, f"fuse_{name}")(slow, fast)
        return [slow, fast]

    def named_units(self) -> Iterator[tuple[str, ResidualUnit3D]]:
        for pathway in PATHWAYS:
            for stage in STAGES:
                for index, unit in enumerate(getattr(self, f"{pathway}_{stage}")):
                    yield f"{pathway}.{stage}.{index}", unit

    def time_spans(self, block: str) -> tuple[tuple[int, int], ...]:
        return frame_spans(self.num_frames, ALPHA if block.startswith("slow.") else 1)

    def fast_features(self, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        """The Fast pathway's output after each stage: what the laterals after a Slow block read."""
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
        slow = rearrange(units[int(index)].attention(block_input), "(b t) c h w -> b c t h w", t=self.num_frames // ALPHA)
        for unit in units[int(index) + 1:]:
            slow = unit(slow)
        for name in STAGES[STAGES.index(stage):]:
            if name != stage:
                slow = getattr(self, f"slow_{name}")(slow)
            if name != "res5":
                slow = getattr(self, f"fuse_{name}")(slow, fast[name])
        return [slow, fast["res5"]]
