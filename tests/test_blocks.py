"""Mathematical properties of the paper's blocks, with real numbers."""
import math

import pytest
import torch

from gta_core.layers import (
    DecoupledAttention,
    GlobalTemporalAttention,
    GTABlock,
    NonLocalBlock,
    temporal_mix,
)

T, C, H, W = 4, 32, 6, 6


def features(batch=2, seed=0):
    return torch.randn(batch * T, C, H, W, generator=torch.Generator().manual_seed(seed))


BLOCKS = {
    "nl": lambda: NonLocalBlock(C, T),
    "sa": lambda: DecoupledAttention(C, T, temporal=False),
    "ta": lambda: DecoupledAttention(C, T, spatial=False),
    "dnl": lambda: DecoupledAttention(C, T),
    "tape": lambda: DecoupledAttention(C, T, positional=True),
    "gta": lambda: GTABlock(C, T, groups=4),
    "pixel_gta": lambda: GTABlock(C, T, groups=4, region=False),
    "region_gta": lambda: GTABlock(C, T, groups=4, pixel=False),
    "gta_no_ccmh": lambda: GTABlock(C, T, groups=4, cross_channel=False),
}


@pytest.mark.parametrize("kind", sorted(BLOCKS))
@pytest.mark.parametrize("train", [True, False])
def test_fresh_block_is_identity(kind, train):
    torch.manual_seed(1)
    block = BLOCKS[kind]().train(train)
    x = features()
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_block_with_nonzero_gamma_changes_its_input(kind):
    torch.manual_seed(1)
    block = BLOCKS[kind]().eval()
    for module in block.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    x = features()
    assert (block(x) - x).abs().mean() > 1e-3


def test_nonlocal_weights_match_direct_softmax():
    """The captured attention equals softmax(θφᵀ/√C') computed from the weights."""
    torch.manual_seed(2)
    block = NonLocalBlock(C, T).eval()
    x = features(batch=1)
    captured = {}
    handle = block.softmax.register_forward_hook(lambda m, a, out: captured.setdefault("w", out))
    block(x)
    handle.remove()

    def project(conv):
        return torch.einsum("oc,nchw->nohw", conv.weight[:, :, 0, 0], x) + conv.bias[None, :, None, None]

    theta = project(block.query)                                     # (T, C', H, W)
    phi = torch.nn.functional.max_pool2d(project(block.key), 2, 2)   # (T, C', H/2, W/2)
    q = theta.permute(0, 2, 3, 1).reshape(-1, C // 2)                # (T·H·W, C')
    k = phi.permute(0, 2, 3, 1).reshape(-1, C // 2)                  # (T·h·w, C')
    expected = torch.softmax(q @ k.T / math.sqrt(C // 2), dim=-1)
    assert captured["w"].shape == (1, T * H * W, T * (H // 2) * (W // 2))
    torch.testing.assert_close(captured["w"][0], expected, rtol=1e-5, atol=1e-6)


def test_nonlocal_variants_match_direct_computation():
    """PySlowFast's pool-before-projection, MMAction2's unscaled softmax with floor pooling of odd grids."""
    torch.manual_seed(3)
    x = torch.randn(T, C, 5, 7)                                          # one clip, an odd 5×7 grid
    pool_floor = lambda t: torch.nn.functional.max_pool2d(t, 2, 2)      # noqa: E731
    pool_ceil = lambda t: torch.nn.functional.max_pool2d(t, 2, 2, ceil_mode=True)  # noqa: E731

    def project(conv, inputs):
        return torch.einsum("oc,nchw->nohw", conv.weight[:, :, 0, 0], inputs) + conv.bias[None, :, None, None]

    def rows(t):                                                         # (T, C', h, w) -> (T·h·w, C')
        return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])

    cases = [
        (dict(pool="before"), lambda blk: (project(blk.key, pool_ceil(x)), 1 / math.sqrt(C // 2)), (3, 4)),
        (dict(pool_ceil=False, scale=False), lambda blk: (pool_floor(project(blk.key, x)), 1.0), (2, 3)),
        (dict(pool="none"), lambda blk: (project(blk.key, x), 1 / math.sqrt(C // 2)), (5, 7)),
    ]
    for options, keys_of, key_grid in cases:
        block = NonLocalBlock(C, T, **options).eval()
        captured = {}
        handle = block.softmax.register_forward_hook(lambda m, a, out: captured.setdefault("w", out))
        block(x)
        handle.remove()
        keys, scale = keys_of(block)
        expected = torch.softmax(rows(project(block.query, x)) @ rows(keys).T * scale, dim=-1)
        assert block.key_grid(5, 7) == key_grid == tuple(keys.shape[-2:]), options
        torch.testing.assert_close(captured["w"][0], expected, rtol=1e-5, atol=1e-6)
    assert NonLocalBlock(C, T, out_bias=False).out.bias is None


def test_temporal_mix_by_hand():
    # T = 2, G = 2 groups of 1 channel, N = 1 sample.
    values = torch.tensor([[[1.0, 10.0], [2.0, 20.0]]])  # (N=1, T=2, C=2): V_g[t] = values[0, t, g]
    single = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    # one matrix for all channels: out[t] = Σ_s M[t, s] V[s]
    assert temporal_mix(values, single).tolist() == [[[1.5, 15.0], [2.0, 20.0]]]
    # multi-head, no channel interaction: group 0 uses M0, group 1 uses M1
    per_group = torch.stack([single, torch.eye(2).flip(0)])
    assert temporal_mix(values, per_group).tolist() == [[[1.5, 20.0], [2.0, 10.0]]]
    # CCMH (Eq. 7-8): head k = Σ_g M̂_g^k V_g
    ccmh = torch.zeros(2, 2, 2, 2)
    ccmh[0, 0] = torch.eye(2)          # group 0 -> head 0, identity
    ccmh[1, 0] = torch.eye(2) * 0.1    # group 1 -> head 0, scaled
    ccmh[0, 1] = single                # group 0 -> head 1
    ccmh[1, 1] = torch.eye(2).flip(0)  # group 1 -> head 1, time-reversed
    # head 0: [1 + 0.1·10, 2 + 0.1·20] = [2, 4]
    # head 1: [0.5·1 + 0.5·2 + 20, 2 + 10] = [21.5, 12]
    assert torch.allclose(temporal_mix(values, ccmh), torch.tensor([[[2.0, 21.5], [4.0, 12.0]]]))


def test_gta_widths_and_matrices_follow_the_paper():
    block = GlobalTemporalAttention(512, 8)
    assert block.pixel_matrix.shape == (8, 8, 8, 8)        # (G, N_h = G, T, T)
    assert block.region_matrix.shape == (8, 8, 8, 8)
    assert block.num_regions == 64                         # K = C/8
    assert block.region_assign.weight.shape[:2] == (64, 512)  # W_G ∈ R^{K×C}
    assert block.pixel_value.out_channels == 128           # C/4
    assert block.region_value.out_channels == 96           # 3C/16
    no_ccmh = GlobalTemporalAttention(512, 8, cross_channel=False, groups=1)
    assert no_ccmh.pixel_matrix.shape == (8, 8)


def test_gta_region_maps_are_distributions_over_pixels():
    block = GlobalTemporalAttention(C, T, groups=4).eval()
    x = features()
    out = {}
    handle = block.regions.register_forward_hook(lambda m, a, o: out.setdefault("g", o))
    block(x)
    handle.remove()
    assert out["g"].shape == (2 * T, C // 8, H * W)
    torch.testing.assert_close(out["g"].sum(-1), torch.ones(2 * T, C // 8))


def test_swapped_dnl_uses_the_other_projections():
    torch.manual_seed(4)
    block = DecoupledAttention(C, T).eval()
    for module in block.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    x = features()
    normal = block(x)
    block.swap_projections = True
    swapped = block(x)
    # Swapping by hand gives the same result.
    block.swap_projections = False
    spatial_proj, temporal_proj = block.spatial.projections, block.temporal.projections
    by_hand = block.temporal(block.spatial(x, temporal_proj), spatial_proj)
    torch.testing.assert_close(swapped, by_hand)
    assert (normal - swapped).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["nl", "sa", "ta", "dnl", "tape", "gta"])
def test_fused_kernel_equals_the_explicit_softmax_path(kind):
    """Unwatched, `attend` runs torch's fused scaled_dot_product_attention; watched (a capture hook on
    the block's softmax), it forms the weights explicitly. Same output to float tolerance, forward and grad."""
    from gta_core.layers.common import AttentionSoftmax

    torch.manual_seed(3)
    block = BLOCKS[kind]().eval()
    for module in block.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    softmaxes = [m for m in block.modules() if isinstance(m, AttentionSoftmax) and m is not getattr(block, "regions", None)]
    x = features().requires_grad_()
    fused = block(x)
    (fused_grad,) = torch.autograd.grad(fused.square().sum(), x)
    handles = [m.register_forward_hook(lambda *args: None) for m in softmaxes]
    assert all(m.watched for m in softmaxes)
    explicit = block(x)
    (explicit_grad,) = torch.autograd.grad(explicit.square().sum(), x)
    for handle in handles:
        handle.remove()
    assert not any(m.watched for m in softmaxes)
    assert (fused - x).abs().mean() > 1e-3                  # the block does change its input
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused_grad, explicit_grad, rtol=1e-4, atol=1e-4)
