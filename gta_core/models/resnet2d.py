"""R2D: a 2D ResNet applied to every frame, frames folded into the batch.

Input and output of every stage are (B·T, C, H, W). A temporal block (NL,
DNL, GTA, ...) can follow any residual block; `insert_after` says which.
The optional TSM shift (Lin et al. 2019) moves 1/8 of the channels one frame
forward and 1/8 one frame back inside each residual branch (paper Table 3).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from einops import rearrange
from torch import nn

# depth -> (residual block type, blocks per stage res2..res5)
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}

STAGES = ("res2", "res3", "res4", "res5")

# Makes the temporal block placed after a residual block: (channels, frames) -> module.
TemporalBlockFactory = Callable[[int, int], nn.Module]


def temporal_shift(x: torch.Tensor, num_frames: int, fold_div: int = 8) -> torch.Tensor:
    """TSM: shift C/fold_div channels back in time and C/fold_div forward, zero-padded."""
    clip = rearrange(x, "(b t) c h w -> b t c h w", t=num_frames)
    fold = clip.shape[2] // fold_div
    shifted = torch.zeros_like(clip)
    shifted[:, :-1, :fold] = clip[:, 1:, :fold]                   # frame t sees t+1
    shifted[:, 1:, fold : 2 * fold] = clip[:, :-1, fold : 2 * fold]  # frame t sees t-1
    shifted[:, :, 2 * fold :] = clip[:, :, 2 * fold :]
    return rearrange(shifted, "b t c h w -> (b t) c h w")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int, shift_frames: int | None) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.shift_frames = shift_frames
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = temporal_shift(x, self.shift_frames) if self.shift_frames else x
        out = self.relu(self.bn1(self.conv1(branch)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, shift_frames: int | None) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.shift_frames = shift_frames
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = temporal_shift(x, self.shift_frames) if self.shift_frames else x
        out = self.relu(self.bn1(self.conv1(branch)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class ResidualUnit(nn.Module):
    """One residual block, optionally followed by a temporal block (`attention`)."""

    def __init__(self, residual: nn.Module, attention: nn.Module | None) -> None:
        super().__init__()
        self.residual = residual
        self.attention = attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.residual(x)
        return self.apply_attention(x) if self.attention is not None else x

    def apply_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention block on the residual block's output (3D units fold time first)."""
        return self.attention(x)


class ResNet2D(nn.Module):
    """Per-frame 2D ResNet with temporal blocks after chosen residual blocks.

    insert_after maps a stage name ("res2".."res5") to the indices of the
    residual blocks that are followed by a block from `make_block`.
    """

    def __init__(
        self,
        depth: int = 50,
        width_multiplier: float = 1.0,
        num_frames: int = 8,
        tsm: bool = False,
        insert_after: dict[str, tuple[int, ...]] | None = None,
        make_block: TemporalBlockFactory | None = None,
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"unsupported depth {depth}; choose one of {sorted(DEPTHS)}")
        kind, counts = DEPTHS[depth]
        block_class = BasicBlock if kind == "basic" else Bottleneck
        insert_after = insert_after or {}
        base = max(8, int(round(64 * width_multiplier)))

        self.stem = nn.Sequential(
            nn.Conv2d(3, base, 7, 2, 3, bias=False),
            nn.BatchNorm2d(base),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        in_channels = base
        shift_frames = num_frames if tsm else None
        for stage, count in enumerate(counts, start=2):
            name = f"res{stage}"
            width = base * 2 ** (stage - 2)
            stride = 1 if stage == 2 else 2
            units = []
            for index in range(count):
                residual = block_class(in_channels, width, stride if index == 0 else 1, shift_frames)
                in_channels = width * block_class.expansion
                attention = make_block(in_channels, num_frames) if index in insert_after.get(name, ()) else None
                units.append(ResidualUnit(residual, attention))
            self.add_module(name, nn.Sequential(*units))
        self.out_channels = in_channels
        self.num_frames = num_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B·T, 3, H, W) -> (B·T, C, H/32, W/32)
        x = self.stem(x)
        return self.res5(self.res4(self.res3(self.res2(x))))

    def named_units(self) -> Iterator[tuple[str, ResidualUnit]]:
        for stage in STAGES:
            for index, unit in enumerate(getattr(self, stage)):
                yield f"{stage}.{index}", unit

    def time_spans(self, block: str) -> tuple[tuple[int, int], ...]:
        """Every block sees every frame: step t is frame t."""
        return tuple((t, t + 1) for t in range(self.num_frames))

    def forward_from_block(self, block: str, block_input: torch.Tensor) -> torch.Tensor:
        """Features when block `block` (e.g. "res3.1") receives `block_input` (B·T, C, H, W).

        Everything before the block is skipped: a sweep that changes only this
        block and what follows (knockouts) computes the prefix once.
        """
        stage, index = block.split(".")
        units = getattr(self, stage)
        x = units[int(index)].attention(block_input)
        for unit in units[int(index) + 1:]:
            x = unit(x)
        for later in STAGES[STAGES.index(stage) + 1:]:
            x = getattr(self, later)(x)
        return x
