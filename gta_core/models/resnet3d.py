"""3D ResNet pieces and the I3D-R50 backbone (MMAction2's ResNet3d).

Features are (B, C, T', H, W) between residual blocks. The attention blocks
of `gta_core.layers` take (B·T', C, H, W), so a `ResidualUnit3D` folds time
into the batch around its block: the same NL / DNL / GTA code runs in 2D and
3D, with T' (the block's time steps, after the backbone's temporal strides)
as its `num_frames`.

I3D follows MMAction2's `i3d_r50.py` config (the one its I3D-R50 and
I3D-R50-NL Kinetics-400 checkpoints use): conv1 5×7×7 with temporal stride 2,
max-pool 1×3×3 with temporal stride 2, a 2×1×1 temporal max-pool after res2,
and 3×1×1 "inflated" first convolutions in the residual blocks the
`inflate` pattern marks. A 32-frame clip reaches res3-res5 as 4 time steps,
each standing for 8 input frames.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from einops import rearrange
from torch import nn

from .resnet2d import ResidualUnit

# Makes the block after a residual unit: (channels, time steps T') -> module.
TemporalBlockFactory = Callable[[int, int], nn.Module]

STAGES = ("res2", "res3", "res4", "res5")
BLOCKS_PER_STAGE_R50 = (3, 4, 6, 3)
# MMAction2 i3d_r50.py: which residual blocks get a 3×1×1 first convolution.
I3D_INFLATE = ((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0))


def conv_bn(in_channels: int, out_channels: int, kernel, stride=1, padding=0, relu: bool = True) -> nn.Sequential:
    """Conv3d (no bias) + BatchNorm3d (+ ReLU): MMAction2's ConvModule, PySlowFast's conv/bn pairs."""
    layers = [
        nn.Conv3d(in_channels, out_channels, kernel, stride, padding, bias=False),
        nn.BatchNorm3d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Bottleneck3D(nn.Module):
    """kt×1×1 -> 1×3×3 (spatial stride) -> 1×1×1, with a 1×1×1 projection shortcut when shapes change.

    kt (`temporal_kernel`) is 3 for an inflated block and 1 otherwise; this is
    both MMAction2's Bottleneck3d (inflate_style "3x1x1", style "pytorch")
    and PySlowFast's BottleneckTransform (stride_1x1 False).
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, out_channels: int, spatial_stride: int, temporal_kernel: int):
        super().__init__()
        self.conv1 = conv_bn(in_channels, width, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0))
        self.conv2 = conv_bn(width, width, (1, 3, 3), (1, spatial_stride, spatial_stride), (0, 1, 1))
        self.conv3 = conv_bn(width, out_channels, 1, relu=False)
        self.downsample = (
            conv_bn(in_channels, out_channels, 1, (1, spatial_stride, spatial_stride), relu=False)
            if spatial_stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + self.downsample(x))


class ResidualUnit3D(ResidualUnit):
    """A 3D residual block, optionally followed by an attention block run on (B·T', C, H, W)."""

    def apply_attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T', H, W) through the attention block, time folded into the batch."""
        frames = x.shape[2]
        folded = self.attention(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(folded, "(b t) c h w -> b c t h w", t=frames)


def make_stage(
    in_channels: int,
    width: int,
    count: int,
    spatial_stride: int,
    temporal_kernels: tuple[int, ...],
    insert_after: tuple[int, ...],
    make_block: TemporalBlockFactory | None,
    time_steps: int,
) -> nn.Sequential:
    """`count` bottlenecks (the first strides), a block after those in `insert_after`."""
    units = []
    out_channels = width * Bottleneck3D.expansion
    for index in range(count):
        residual = Bottleneck3D(
            in_channels, width, out_channels, spatial_stride if index == 0 else 1, temporal_kernels[index]
        )
        attention = make_block(out_channels, time_steps) if index in insert_after else None
        units.append(ResidualUnit3D(residual, attention))
        in_channels = out_channels
    return nn.Sequential(*units)


def frame_spans(num_frames: int, stride: int) -> tuple[tuple[int, int], ...]:
    """Step i of a feature map with total temporal stride `stride` stands for input frames [i·s, (i+1)·s).

    This is the step's stride footprint, not its receptive field (temporal
    convolutions widen the latter by a few frames on each side).
    """
    return tuple((i * stride, min((i + 1) * stride, num_frames)) for i in range(num_frames // stride))


class ResNet3D(nn.Module):
    """I3D-R50: (B, 3, T, H, W) -> [(B, 2048, T/8, H/32, W/32)] (one pathway)."""

    STEM_STRIDE = 4        # conv1 and the first max-pool each halve time
    POOL2_STRIDE = 2       # the 2×1×1 max-pool after res2

    def __init__(
        self,
        width_multiplier: float = 1.0,
        num_frames: int = 32,
        inflate: tuple[tuple[int, ...], ...] = I3D_INFLATE,
        insert_after: dict[str, tuple[int, ...]] | None = None,
        make_block: TemporalBlockFactory | None = None,
    ) -> None:
        super().__init__()
        insert_after = insert_after or {}
        base = max(8, int(round(64 * width_multiplier)))
        self.num_frames = num_frames
        self.stem = nn.Sequential(
            conv_bn(3, base, (5, 7, 7), (2, 2, 2), (2, 3, 3)),
            nn.MaxPool3d((1, 3, 3), (2, 2, 2), (0, 1, 1)),
        )
        self.pool2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1))
        in_channels = base
        for stage_index, (name, count) in enumerate(zip(STAGES, BLOCKS_PER_STAGE_R50)):
            width = base * 2**stage_index
            kernels = tuple(3 if flag else 1 for flag in inflate[stage_index])
            stage = make_stage(
                in_channels, width, count, 1 if stage_index == 0 else 2, kernels,
                insert_after.get(name, ()), make_block, num_frames // self.stage_stride(name),
            )
            self.add_module(name, stage)
            in_channels = width * Bottleneck3D.expansion
        self.out_channels = (in_channels,)

    def stage_stride(self, stage: str) -> int:
        return self.STEM_STRIDE * (1 if stage == "res2" else self.POOL2_STRIDE)

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        x = self.pool2(self.res2(self.stem(clip)))
        return [self.res5(self.res4(self.res3(x)))]

    def named_units(self) -> Iterator[tuple[str, ResidualUnit3D]]:
        for stage in STAGES:
            for index, unit in enumerate(getattr(self, stage)):
                yield f"{stage}.{index}", unit

    def time_spans(self, block: str) -> tuple[tuple[int, int], ...]:
        return frame_spans(self.num_frames, self.stage_stride(block.split(".")[0]))

    def forward_from_block(self, block: str, block_input: torch.Tensor) -> list[torch.Tensor]:
        """Features when block `block` (e.g. "res3.1") receives `block_input` (B·T', C, H, W)."""
        stage, index = block.split(".")
        units = getattr(self, stage)
        frames = self.num_frames // self.stage_stride(stage)
        x = rearrange(units[int(index)].attention(block_input), "(b t) c h w -> b c t h w", t=frames)
        for unit in units[int(index) + 1:]:
            x = unit(x)
        if stage == "res2":
            x = self.pool2(x)
        for later in STAGES[STAGES.index(stage) + 1:]:
            x = getattr(self, later)(x)
        return [x]
