"""Recorded attention layout against a direct computation from the blocks' weights.

Batch 2 and a non-square 6×10 feature grid, so a swapped y/x, a (b t)↔(t b)
mix-up or a wrong key grid changes the numbers. Each expected value is a
softmax written out here from the block's own 1×1 weights and the features
that entered the block (read with a forward pre-hook).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gta_core import capture, create_model
from gta_core.records import decoupled_kind
from gta_core.layers import DecoupledAttention
from gta_core.views import block_kind
from tests.helpers import activate_blocks, one_thread, project  # noqa: F401  (module fixture)

B, T, GRID = 2, 4, (6, 10)
CLIP = torch.randn(B, 3, T, 8 * GRID[0], 8 * GRID[1], generator=torch.Generator().manual_seed(0))
QUERIES = [(0, 0, 0, 0), (1, 3, 5, 9), (1, 2, 0, 7), (0, 1, 4, 2)]     # (b, t, y, x)


def tiny(block: str):
    """R2D-18 ×0.125 with one block after res3.1, whose input grid is 6×10 for CLIP."""
    torch.manual_seed(3)
    model = create_model(f"demo_r2d18_{block}", num_classes=5, width_multiplier=0.125, num_frames=T,
                         gta_groups=2, block_positions=(("res3", (1,)),))
    return activate_blocks(model, seed=1).eval()


def run_with_inputs(model, parts: dict[str, torch.nn.Module]):
    """capture() plus the features entering each of `parts`, (B·T, C, H, W)."""
    seen = {}
    handles = [m.register_forward_pre_hook(lambda mod, args, key=key: seen.setdefault(key, args[0].detach()))
               for key, m in parts.items()]
    try:
        result = capture(model, CLIP)
    finally:
        for handle in handles:
            handle.remove()
    return result.records["res3.1"], seen


def pooled(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 2, 2, ceil_mode=True)


def frame(features: torch.Tensor, b: int, t: int) -> torch.Tensor:
    return features[b * T + t]           # frames are folded batch-major: index b·T + t


def test_nl_rows_equal_the_direct_softmax():
    model = tiny("nl")
    block = model.temporal_blocks()["res3.1"]
    record, seen = run_with_inputs(model, {"x": block})
    x = seen["x"]
    assert record.grid == GRID and record.key_grid == (3, 5)
    keys = pooled(project(block.key, x))                                     # (B·T, C', 3, 5)
    for b, t, y, xq in QUERIES:
        query = project(block.query, x)[b * T + t, :, y, xq]                # (C',)
        # keys of clip b over (t', y', x'), in that order
        clip_keys = torch.stack([frame(keys, b, s) for s in range(T)]).permute(0, 2, 3, 1).reshape(-1, keys.shape[1])
        expected = torch.softmax(clip_keys @ query / math.sqrt(block.inner_channels), dim=0)
        torch.testing.assert_close(record.row(t, y, xq, batch=b).flatten(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["dnl", "tape"])
def test_sa_and_ta_maps_equal_the_direct_softmax(kind):
    model = tiny(kind)
    block = model.temporal_blocks()["res3.1"]
    record, seen = run_with_inputs(model, {"sa": block.spatial, "ta": block.temporal})
    sa_in, ta_in = seen["sa"], seen["ta"]
    sa, ta = block.spatial, block.temporal
    assert record.spatial.grid == GRID and record.spatial.key_grid == (3, 5)
    ta_tokens = ta_in
    if ta.positional is not None:                                            # TAPE adds its table per frame
        ta_tokens = ta_in + ta.positional.repeat(B, 1)[:, :, None, None]
    for b, t, y, xq in QUERIES:
        query = project(sa.projections.query, sa_in)[b * T + t, :, y, xq]
        keys = pooled(project(sa.projections.key, sa_in))[b * T + t]         # (C', 3, 5)
        expected = torch.softmax(torch.einsum("c,chw->hw", query, keys).flatten() / math.sqrt(sa.inner_channels), 0)
        torch.testing.assert_close(record.spatial.map_at(t, y, xq, batch=b).flatten(), expected, rtol=1e-4, atol=1e-6)

        q = project(ta.projections.query, ta_tokens)[b * T + t, :, y, xq]
        k = torch.stack([project(ta.projections.key, ta_tokens)[b * T + s, :, y, xq] for s in range(T)])
        expected = torch.softmax(k @ q / math.sqrt(ta.inner_channels), dim=0)
        torch.testing.assert_close(record.temporal.weights_at(t, y, xq, batch=b), expected, rtol=1e-4, atol=1e-6)


def test_gta_region_maps_equal_the_direct_softmax():
    model = tiny("gta")
    block = model.temporal_blocks()["res3.1"]
    record, seen = run_with_inputs(model, {"gta": block.temporal})
    x = seen["gta"]
    assert record.regions.shape == (B, T, block.temporal.num_regions, *GRID)
    assign = project(block.temporal.region_assign, x)                        # (B·T, K, H, W)
    for b, t, _, _ in QUERIES:
        for k in (0, block.temporal.num_regions - 1):
            expected = torch.softmax(assign[b * T + t, k].flatten(), dim=0).reshape(GRID)
            torch.testing.assert_close(record.regions[b, t, k], expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind", ["gta", "nl", "dnl"])
def test_blocks_treat_clips_of_a_batch_independently(kind):
    """Two clips together give what each gives alone: a (b t)↔(t b) mix-up would mix them."""
    block = tiny(kind).temporal_blocks()["res3.1"]
    features = torch.randn(B * T, block_channels(block), *GRID, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        together = block(features)
        alone = torch.cat([block(features[b * T:(b + 1) * T]) for b in range(B)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    assert (together - features).abs().mean() > 1e-3                        # the block is active


def block_channels(block: torch.nn.Module) -> int:
    return next(m for m in block.modules() if isinstance(m, torch.nn.BatchNorm2d)).num_features


def test_region_strength_is_the_contribution_after_the_output_projection():
    """Scaling one head of M̂_R by 3 and its W_R^O columns by 1/3 is the same function: same strengths.

    By hand: the strength equals the norm of (output with only region k's update) - (output with none),
    averaged over frames, through the closing BatchNorm's scale (running statistics, eval mode).
    """
    model = tiny("gta")
    gta = model.temporal_blocks()["res3.1"].temporal
    before = capture(model, CLIP)
    heads = gta.region_matrix.shape[1]
    width = gta.region_out.weight.shape[1] // heads                           # channels per head
    with torch.no_grad():
        gta.region_matrix[:, 0] *= 3.0
        gta.region_out.weight[:, :width] /= 3.0
    after = capture(model, CLIP)
    torch.testing.assert_close(after.logits, before.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(after.records["res3.1"].region_strength, before.records["res3.1"].region_strength,
                               rtol=1e-4, atol=1e-6)

    record = after.records["res3.1"]
    mixed = None

    def keep(module, args, output):
        nonlocal mixed
        mixed = output.detach()

    handle = gta.mixed_regions.register_forward_hook(keep)
    with torch.no_grad():
        model(CLIP)
    handle.remove()
    from einops import rearrange
    mixed = rearrange(mixed, "(b k) t c -> b t k c", b=B)                    # (B, T, K, C_R)
    maps = rearrange(record.regions, "b t k h w -> b t k (h w)")
    scale = GRID[0] * GRID[1] / gta.num_regions
    gain = gta.norm.weight / torch.sqrt(gta.norm.running_var + gta.norm.eps)
    b, k = 1, gta.num_regions - 1
    per_frame = []
    for t in range(T):
        update = scale * maps[b, t, k][:, None] * mixed[b, t, k][None, :]    # (H·W, C_R): region k alone
        per_frame.append(((update @ gta.region_out.weight[:, :, 0, 0].T) * gain).norm())
    assert record.region_strength[b, k].item() == pytest.approx(torch.stack(per_frame).mean().item(), rel=1e-4)


@pytest.mark.parametrize("block, kind, swappable", [
    ("nl", "nl", False), ("sa", "sa", False), ("ta", "ta", False), ("dnl", "dnl", True),
    ("tape", "sa+tape", True), ("gta", "gta", False),
])
def test_record_kind_says_which_block_was_captured(block, kind, swappable):
    """`kind` is set at capture time from the block's parts; `block_kind` is its upper case."""
    record = capture(tiny(block), CLIP).records["res3.1"]
    assert record.kind == kind and block_kind(record) == kind.upper()
    assert getattr(record, "swappable", False) is swappable


def test_decoupled_kind_of_every_combination():
    """TA with its positional embedding and no SA is "tape"; a block with neither part is refused."""
    parts = {"sa": dict(temporal=False), "ta": dict(spatial=False), "tape": dict(spatial=False, positional=True),
             "dnl": dict(), "sa+tape": dict(positional=True)}
    for kind, switches in parts.items():
        assert decoupled_kind(DecoupledAttention(16, T, **switches)) == kind
    with pytest.raises(ValueError, match="without SA and without TA"):
        decoupled_kind(DecoupledAttention(16, T, spatial=False, temporal=False))
