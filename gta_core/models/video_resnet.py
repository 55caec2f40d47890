"""torchvision's 18-layer video ResNets (Tran et al. 2018): R3D-18, MC3-18 and R(2+1)D-18, for import.

Laid out with torchvision's own module names (torchvision/models/video/resnet.py,
`VideoResNet`), so its state dicts load by adding a prefix: `stem`, then
`layer1`..`layer4` of two `BasicBlock`s (`conv1` = conv + BN + ReLU, `conv2`
= conv + BN, `downsample` = 1×1×1 conv + BN), the head on the space-time mean.
The convolutions per architecture:

* r3d_18: 3×3×3 everywhere; stem 3×7×7 (spatial stride 2); layer2-4 stride 2
  in time too, so layer4's steps stand for 8 input frames.
* mc3_18: 3×3×3 in layer1 only, 1×3×3 in layer2-4 (no temporal stride).
* r2plus1d_18: each 3×3×3 factored into 1×3×3 -> BN -> ReLU -> 3×1×1 with
  torchvision's `midplanes`; the stem likewise (1×7×7 to 45 channels, 3×1×1).

No attention blocks: the app shows their predictions and attributions.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .resnet3d import frame_spans

ARCHITECTURES = ("r3d_18", "mc3_18", "r2plus1d_18")
WIDTHS = (64, 128, 256, 512)


def _conv(kind: str, in_planes: int, out_planes: int, midplanes: int, stride: int = 1) -> nn.Module:
    """torchvision's Conv3DSimple ("3d"), Conv3DNoTemporal ("2d") or Conv2Plus1D ("2+1d")."""
    if kind == "3d":
        return nn.Conv3d(in_planes, out_planes, 3, stride, 1, bias=False)
    if kind == "2d":
        return nn.Conv3d(in_planes, out_planes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
    return nn.Sequential(
        nn.Conv3d(in_planes, midplanes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
        nn.BatchNorm3d(midplanes),
        nn.ReLU(inplace=True),
        nn.Conv3d(midplanes, out_planes, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
    )


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, kind: str, stride: int = 1) -> None:
        super().__init__()
        midplanes = (in_planes * planes * 27) // (in_planes * 9 + 3 * planes)   # torchvision's formula
        self.conv1 = nn.Sequential(_conv(kind, in_planes, planes, midplanes, stride), nn.BatchNorm3d(planes),
                                   nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(_conv(kind, planes, planes, midplanes), nn.BatchNorm3d(planes))
        self.downsample = None
        if stride != 1 or in_planes != planes:
            time_stride = 1 if kind == "2d" else stride          # get_downsample_stride
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, 1, (time_stride, stride, stride), bias=False), nn.BatchNorm3d(planes)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class VideoResNet(nn.Module):
    """(B, 3, T, H, W) -> [(B, 512, T', H/16, W/16)]; T' = T/8 (r3d, r(2+1)d) or T (mc3)."""

    def __init__(self, architecture: str, num_frames: int) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown video ResNet {architecture!r}; choose one of {ARCHITECTURES}")
        self.num_frames = num_frames
        kinds = {"r3d_18": ("3d",) * 4, "mc3_18": ("3d", "2d", "2d", "2d"), "r2plus1d_18": ("2+1d",) * 4}[architecture]
        if architecture == "r2plus1d_18":
            self.stem = nn.Sequential(
                nn.Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False), nn.BatchNorm3d(45), nn.ReLU(inplace=True),
                nn.Conv3d(45, 64, (3, 1, 1), 1, (1, 0, 0), bias=False), nn.BatchNorm3d(64), nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(64), nn.ReLU(inplace=True)
            )
        in_planes = 64
        for index, (width, kind) in enumerate(zip(WIDTHS, kinds)):
            stride = 1 if index == 0 else 2
            self.add_module(f"layer{index + 1}", nn.Sequential(
                BasicBlock(in_planes, width, kind, stride), BasicBlock(width, width, kind)
            ))
            in_planes = width
        # Input frames per step of layer4: 2 per strided layer whose convolutions stride in time.
        self.layer4_stride = 2 ** sum(kind != "2d" for kind in kinds[1:])
        self.out_channels = (in_planes,)

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(clip)
        return [self.layer4(self.layer3(self.layer2(self.layer1(x))))]

    def named_units(self) -> Iterator[tuple[str, nn.Module]]:
        return iter(())          # no attention blocks

    def time_spans(self, block: str) -> tuple[tuple[int, int], ...]:
        """Steps of layer4 (Grad-CAM's layer), the only place asked."""
        return frame_spans(self.num_frames, self.layer4_stride)
