"""Small pieces shared by every attention block."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SoftmaxStatistics(nn.Module):
    """Hook point for a lazy capture: `attend` calls it with (q, k, log-sum-exp, scale) and it returns nothing.

    The log-sum-exp is None for DotProductWeights, whose rows need only q and k."""

    def forward(self, query, key, logsumexp, scale) -> None:
        return None


class AttentionSoftmax(nn.Module):
    """Softmax over the last axis, as a named module.

    Every block computes its attention weights through one of these (`self.softmax`)
    so that `gta_core.records` can read them with forward hooks instead of
    re-implementing each block's maths: a hook on the module itself sees the
    dense weights, a hook on `statistics` the inputs of a lazy record.
    """

    # The weights of each query sum to 1 (a distribution over keys); DotProductWeights' do not.
    is_distribution = True

    def __init__(self) -> None:
        super().__init__()
        self.statistics = SoftmaxStatistics()

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.softmax(dim=-1)

    def fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        """softmax(q kᵀ · scale) v without holding the L×S weights (flash / memory-efficient kernels on GPU)."""
        return F.scaled_dot_product_attention(q, k, v, scale=scale)

    def row_statistics(self, scores: torch.Tensor) -> torch.Tensor | None:
        """What a lazy record keeps per row besides q and k: the log-sum-exp (N, L) of the scores."""
        return torch.logsumexp(scores.float(), dim=-1)

    def fused_with_statistics(self, q, k, v, scale: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`fused`'s output and `row_statistics`, still without the L×S weights where a kernel allows."""
        return _attention_with_logsumexp(q, k, v, scale)

    @property
    def watched(self) -> bool:
        """True while a forward hook reads the dense weights (dense capture, tests)."""
        return bool(self._forward_hooks or self._forward_pre_hooks)

    @property
    def recorded(self) -> bool:
        """True while a capture keeps q, k and the log-sum-exp (`records.capture`)."""
        return bool(self.statistics._forward_pre_hooks or self.statistics._forward_hooks)


def _attention_with_logsumexp(q, k, v, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ · scale) v and each row's log-sum-exp, without the L×S matrix where a kernel allows."""
    flash = q.device.type == "cpu" and q.dtype in (torch.float32, torch.float64, torch.bfloat16)
    if flash and q.shape[-1] == v.shape[-1] and not q.requires_grad:
        # torch's CPU flash kernel, the one F.scaled_dot_product_attention runs, also returns the log-sum-exp.
        # Called directly it needs contiguous inputs (a permuted view gives wrong sums), which SDPA arranges itself.
        q, k, v = (z.contiguous() for z in (q, k, v))
        out, logsumexp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q[:, None], k[:, None], v[:, None], 0.0, False, scale=scale
        )[:2]
        return out[:, 0], logsumexp[:, 0].float()
    # Elsewhere: rows in chunks of at most ~16M scores.
    outs, sums = [], []
    step = max(1, (1 << 24) // max(1, q.shape[0] * k.shape[1]))
    for start in range(0, q.shape[1], step):
        scores = q[:, start:start + step] @ k.transpose(-2, -1) * scale
        logsumexp = torch.logsumexp(scores.float(), dim=-1)
        outs.append(torch.exp(scores.float() - logsumexp[..., None]).to(v.dtype) @ v)
        sums.append(logsumexp)
    return torch.cat(outs, dim=1), torch.cat(sums, dim=1)


class DotProductWeights(AttentionSoftmax):
    """mmcv's dot-product pairwise function: scores / S (S keys), no softmax; rows are signed."""

    is_distribution = False

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return scores / scores.shape[-1]

    def fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
        # Linear in the scores, so (q kᵀ) v = q (kᵀ v): (N, L, C) x (N, C, C) never holds the L×S weights.
        return q @ (k.transpose(-2, -1) @ v) * (scale / k.shape[-2])

    def row_statistics(self, scores: torch.Tensor) -> None:
        return None      # a row is q·kᵀ·scale/S itself: q and k are all a lazy record needs

    def fused_with_statistics(self, q, k, v, scale: float) -> tuple[torch.Tensor, None]:
        return self.fused(q, k, v, scale), None


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, softmax: AttentionSoftmax) -> torch.Tensor:
    """softmax(q kᵀ · scale) v: the one attention kernel of NL, SA and TA (`softmax` may be DotProductWeights).

    q (N, L, C), k and v (N, S, C) -> (N, L, C). When a hook watches `softmax`
    (a dense capture, tests), the (N, L, S) weights are formed explicitly and
    pass through it. When a capture records it lazily, a kernel that also
    returns each row's log-sum-exp runs and `softmax.statistics` sees
    (q, k, lse, scale). Otherwise `softmax.fused` runs (torch's
    scaled_dot_product_attention; q (kᵀv)/S for dot-product weights), which
    never holds the L×S matrix. All give the same output to float tolerance
    (tests/test_blocks.py, tests/test_nl_modes.py).
    """
    if softmax.watched:
        scores = q @ k.transpose(-2, -1) * scale
        if softmax.recorded:
            softmax.statistics(q, k, softmax.row_statistics(scores), scale)
        return softmax(scores) @ v
    if softmax.recorded:
        out, statistics = softmax.fused_with_statistics(q, k, v, scale)
        softmax.statistics(q, k, statistics, scale)
        return out.to(v.dtype)
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
