"""Small pieces shared by every attention block."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AttentionSoftmax(nn.Module):
    """Softmax over the last axis, as a named module.

    Every block computes its attention weights through one of these (`self.attend`)
    so that `gta_core.records` can read them with a forward hook instead of
    re-implementing each block's maths.
    """

    # The weights of each query sum to 1 (a distribution over keys); DotProductWeights' do not.
    is_distribution = True

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.softmax(dim=-1)

    def fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """softmax(q kᵀ · scale) v without holding the L×S weights (flash / memory-efficient kernels on GPU)."""
        return F.scaled_dot_product_attention(q, k, v, scale=scale)

    @property
    def watched(self) -> bool:
        """True while a forward hook reads the weights (capture, tests)."""
        return bool(self._forward_hooks or self._forward_pre_hooks)


class DotProductWeights(AttentionSoftmax):
    """mmcv's dot-product pairwise function: scores / S (S keys), no softmax; rows are signed."""

    is_distribution = False

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores / scores.shape[-1]

    def fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        # Linear in the scores, so (q kᵀ) v = q (kᵀ v): (N, L, C) x (N, C, C) never holds the L×S weights.
        return q @ (k.transpose(-2, -1) @ v) * (scale / k.shape[-2])


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, softmax: AttentionSoftmax) -> torch.Tensor:
    """softmax(q kᵀ · scale) v: the one attention kernel of NL, SA and TA (`softmax` may be DotProductWeights).

    q (N, L, C), k and v (N, S, C) -> (N, L, C). When a hook watches `softmax`
    (a capture), the (N, L, S) weights are formed explicitly and pass through
    it; otherwise torch's fused scaled_dot_product_attention runs, which never
    holds the L×S matrix (flash / memory-efficient kernels on GPU). Both give
    the same output to float tolerance (tests/test_blocks.py).
    """
    if softmax.watched:
        return softmax(q @ k.transpose(-2, -1) * scale) @ v
    return softmax.fused(q, k, v, scale)


def conv1x1(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    """A per-pixel linear projection (the paper's W_Q, W_K, W_V, W^O)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias)


def zero_init_batchnorm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm whose γ starts at 0, so the block it closes starts as the identity."""
    norm = nn.BatchNorm2d(channels)
    nn.init.zeros_(norm.weight)
    return norm


def round_up(value: float, multiple: int) -> int:
    """Round `value` up to a positive multiple of `multiple` (group-divisible widths)."""
    return max(multiple, int(math.ceil(value / multiple)) * multiple)


def key_pool(enabled: bool, ceil_mode: bool = True) -> nn.Module:
    """2×2 spatial max-pooling of keys and values (Wang et al. 2018, "subsampling").

    ceil_mode keeps the odd feature maps of small inputs (7×7 at 112²) whole;
    MMAction2 and the TSM repository pool with floor (their 7×7 -> 3×3), so
    imported models set ceil_mode=False.
    """
    return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode) if enabled else nn.Identity()


def pooled_grid(pool: nn.Module, height: int, width: int) -> tuple[int, int]:
    """The (h, w) key grid that `pool` (from `key_pool`) makes of an (H, W) feature map."""
    if not isinstance(pool, nn.MaxPool2d):
        return height, width
    round_ = math.ceil if pool.ceil_mode else math.floor
    return round_(height / 2), round_(width / 2)


def pooled_spans(pool: nn.Module, size: int) -> tuple[tuple[int, int], ...]:
    """Along one axis of `size` feature cells: the [start, stop) cells each key cell pools.

    With ceil mode the last key of an odd axis pools one cell (7 -> [0,2) [2,4)
    [4,6) [6,7)); with floor mode the odd last cell is in no key (7 -> 3 keys).
    """
    if not isinstance(pool, nn.MaxPool2d):
        return tuple((i, i + 1) for i in range(size))
    count = pooled_grid(pool, size, size)[0]
    return tuple((2 * i, min(2 * i + 2, size)) for i in range(count))
