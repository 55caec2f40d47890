"""torchvision's S3D (Xie et al. 2018, separable 3-D Inception), for import.

Laid out with torchvision's own module names (torchvision/models/video/s3d.py,
`S3D.features`), so its state dicts load by adding a prefix. Every convolution
is torchvision's `Conv3dNormActivation`: conv without bias, BatchNorm3d
(eps 1e-3, momentum 1e-3), ReLU. The 16 modules of `features`:

* 0: `TemporalSeparableConv` 3 -> 64: a 1×7×7 conv (spatial stride 2), then
  a 7×1×1 one (temporal stride 2), padding 3 on each;
* 1: max-pool 1×3×3, stride (1, 2, 2), padding (0, 1, 1);
* 2: 1×1×1 conv 64 -> 64; 3: `TemporalSeparableConv` 64 -> 192 (3×3: 1×3×3
  then 3×1×1, stride 1, padding 1); 4: max-pool as 1;
* 5, 6: `SepInceptionBlock3D`s: branch0 a 1×1×1 conv; branch1 and branch2 a
  1×1×1 conv then a 3×3 `TemporalSeparableConv`; branch3 a 3×3×3 max-pool
  (stride 1, padding 1) then a 1×1×1 conv; outputs concatenated in that order;
* 7: max-pool 3×3×3, stride 2, padding 1; 8-12: five Inception blocks;
* 13: max-pool 2×2×2, stride 2, no padding; 14, 15: two Inception blocks (1024).

Time is halved three times (0, 7, 13), so each step of `features`' output,
the layer Grad-CAM hooks, stands for 8 input frames; space is divided by 32.

torchvision's head: AvgPool3d((2, 7, 7), stride 1) on that map, Dropout, a
1×1×1 Conv3d (with bias) to the classes, then the mean over T, H, W. The
conv commutes with the mean, so ours returns the AvgPool3d output and
VideoNet's head (mean + Linear, the conv's kernel flattened) is the same
function. The stride-1 pool is kept, not folded into a global mean: on a map
larger than 2×7×7 (more than 16 frames, or a side over 224) the windows
overlap and weigh the border steps and cells less. On a map smaller than the
window, where torchvision's pool refuses the input, ours shrinks the window
to the map (the global mean there), so small clips still run.

No attention blocks: the app shows their predictions and attributions.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .resnet3d import frame_spans

TIME_STRIDE = 8                     # features 0, 7 and 13 each halve time
HEAD_POOL = (2, 7, 7)               # torchvision's S3D.avgpool
# (in, branch0, branch1 mid, branch1 out, branch2 mid, branch2 out, branch3) of torchvision's Inception blocks,
# by their index in `features`; the max-pools between them by theirs.
INCEPTION = {
    5: (192, 64, 96, 128, 16, 32, 32), 6: (256, 128, 128, 192, 32, 96, 64),
    8: (480, 192, 96, 208, 16, 48, 64), 9: (512, 160, 112, 224, 24, 64, 64), 10: (512, 128, 128, 256, 24, 64, 64),
    11: (512, 112, 144, 288, 32, 64, 64), 12: (528, 256, 160, 320, 32, 128, 128),
    14: (832, 256, 160, 320, 32, 128, 128), 15: (832, 384, 192, 384, 48, 128, 128),
}


def _conv(in_planes: int, out_planes: int, kernel=1, stride=1, padding=0) -> nn.Sequential:
    """torchvision's Conv3dNormActivation with its S3D norm layer: conv (no bias), BN, ReLU."""
    return nn.Sequential(
        nn.Conv3d(in_planes, out_planes, kernel, stride, padding, bias=False),
        nn.BatchNorm3d(out_planes, eps=0.001, momentum=0.001),
        nn.ReLU(inplace=True),
    )


def _separable(in_planes: int, out_planes: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    """TemporalSeparableConv: 1×k×k (spatial stride), then k×1×1 (temporal stride)."""
    return nn.Sequential(
        _conv(in_planes, out_planes, (1, kernel, kernel), (1, stride, stride), (0, padding, padding)),
        _conv(out_planes, out_planes, (kernel, 1, 1), (stride, 1, 1), (padding, 0, 0)),
    )


class SepInceptionBlock3D(nn.Module):
    def __init__(self, in_planes: int, b0_out: int, b1_mid: int, b1_out: int, b2_mid: int, b2_out: int,
                 b3_out: int) -> None:
        super().__init__()
        self.branch0 = _conv(in_planes, b0_out)
        self.branch1 = nn.Sequential(_conv(in_planes, b1_mid), _separable(b1_mid, b1_out, 3, 1, 1))
        self.branch2 = nn.Sequential(_conv(in_planes, b2_mid), _separable(b2_mid, b2_out, 3, 1, 1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), _conv(in_planes, b3_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class S3D(nn.Module):
    """(B, 3, T, H, W) -> [(B, 1024, T'', H'', W'')]: `features` (T/8, H/32, W/32), then the head's stride-1 pool."""

    def __init__(self, num_frames: int) -> None:
        super().__init__()
        self.num_frames = num_frames
        def spatial_pool() -> nn.MaxPool3d:
            return nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

        layers = [
            _separable(3, 64, 7, 2, 3), spatial_pool(), _conv(64, 64), _separable(64, 192, 3, 1, 1), spatial_pool(),
            *(SepInceptionBlock3D(*INCEPTION[i]) for i in (5, 6)),
            nn.MaxPool3d(3, stride=2, padding=1),
            *(SepInceptionBlock3D(*INCEPTION[i]) for i in (8, 9, 10, 11, 12)),
            nn.MaxPool3d(2, stride=2),
            *(SepInceptionBlock3D(*INCEPTION[i]) for i in (14, 15)),
        ]
        self.features = nn.Sequential(*layers)
        self.out_channels = (1024,)

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        x = self.features(clip)
        window = [min(k, size) for k, size in zip(HEAD_POOL, x.shape[2:])]   # torchvision's, or the whole map
        return [F.avg_pool3d(x, window, stride=1)]

    def named_units(self) -> Iterator[tuple[str, nn.Module]]:
        return iter(())          # no attention blocks

    def time_spans(self, block: str) -> tuple[tuple[int, int], ...]:
        """Steps of `features`' output (Grad-CAM's layer), the only place asked."""
        return frame_spans(self.num_frames, TIME_STRIDE)
