"""SlowFast's switches where PySlowFast and MMAction2 differ from ours: Slow sampling, key pooling, α, laterals.

Indices and pooled shapes are computed by hand in the tests; the models are
width ×0.25 (the demo widths) on a non-square 112×144 clip, whose res4 grid
(7×9) is odd in both directions.
"""
from __future__ import annotations

import pytest
import torch

from gta_core import create_model
from gta_core.models import VideoNet, VideoNetConfig
from gta_core.models.slowfast import slow_indices
from tests.helpers import activate_blocks, one_thread  # noqa: F401  (module fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_slow_indices_by_hand():
    # torch.linspace(0, 63, 16) = 0, 4.2, 8.4, ..., 63; .long() truncates.
    linspace = [0, 4, 8, 12, 16, 21, 25, 29, 33, 37, 42, 46, 50, 54, 58, 63]
    stride = list(range(0, 64, 4))
    assert slow_indices(64, 4, "linspace") == linspace
    assert slow_indices(64, 4, "stride") == stride
    assert max(a - b for a, b in zip(linspace, stride)) == 3      # "up to 3 frames", at the end
    assert slow_indices(12, 4, "linspace") == [0, 5, 11]          # 0, 5.5, 11
    assert slow_indices(32, 8, "linspace") == [0, 10, 20, 31]     # 0, 10.33, 20.67, 31
    with pytest.raises(ValueError, match="unknown slow_sampling 'nearest'"):
        slow_indices(16, 4, "nearest")


def _slow_stem_input(model: VideoNet, clip: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = model.backbone.slow_stem.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model(clip)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("sampling, frames, spans", [
    ("stride", [0, 4, 8], ((0, 4), (4, 8), (8, 12))),
    ("linspace", [0, 5, 11], ((0, 5), (5, 11), (11, 12))),
])
def test_the_slow_pathway_sees_the_sampled_frames(sampling, frames, spans):
    model = create_model("demo_slowfast_r50_dnl", num_classes=3, num_frames=12, slow_sampling=sampling).eval()
    # Frame t of the clip is filled with the value t, so the Slow stem's input names the frames it got.
    clip = torch.arange(12, dtype=torch.float32).view(1, 1, 12, 1, 1).expand(1, 3, 12, 32, 32).contiguous()
    seen = _slow_stem_input(model, clip)
    assert seen[0, 0, :, 0, 0].tolist() == frames
    assert model.time_spans("slow.res3.1") == spans
    assert model.time_spans("slow.res4.1") == spans


def _key_count(model: VideoNet, block: str, clip: torch.Tensor) -> tuple[int, int]:
    """(queries, keys) of the spatial softmax of `block` (NL: its only one; DNL: SA's)."""
    attention = model.temporal_blocks()[block]
    softmax = attention.softmax if hasattr(attention, "softmax") else attention.spatial.softmax
    shapes = []
    handle = softmax.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape[-2:])))
    try:
        with torch.no_grad():
            model(clip)
    finally:
        handle.remove()
    return shapes[0]


# NL attends over the block's 2 time steps (8 frames / α) times the grid; SA over one frame's grid.
@pytest.mark.parametrize("name, steps", [("demo_slowfast_r50_nl", 2), ("demo_slowfast_r50_dnl", 1)])
def test_slowfast_pool_floor_drops_the_odd_row_and_column(name, steps):
    clip = torch.randn(1, 3, 8, 112, 144, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)                    # the weights do not depend on the tests that ran before
    ceil = create_model(name, num_classes=3, num_frames=8).eval()
    floor = create_model(name, num_classes=3, num_frames=8, slowfast_pool="floor").eval()
    floor.load_state_dict(ceil.state_dict())
    block = "slow.res4.1"                   # res4 of a 112×144 clip: 7×9 = 63 queries
    assert _key_count(ceil, block, clip) == (steps * 63, steps * 4 * 5)      # ceil(7/2)·ceil(9/2)
    assert _key_count(floor, block, clip) == (steps * 63, steps * 3 * 4)     # floor(7/2)·floor(9/2)
    assert _key_count(floor, "slow.res3.1", clip) == (steps * 14 * 18, steps * 7 * 9)   # even grid: no change
    activate_blocks(ceil, seed=1)
    floor.load_state_dict(ceil.state_dict())
    # The block's own output moves (~1 % of its largest value, seeds 0-2); the logits of these
    # random demo models are ~0.03 and move by ~5e-4, too close to any fixed tolerance.
    ceil_out, floor_out = _block_output(ceil, block, clip), _block_output(floor, block, clip)
    assert (ceil_out - floor_out).abs().max() > 1e-3 * ceil_out.abs().max()


def _block_output(model: VideoNet, block: str, clip: torch.Tensor) -> torch.Tensor:
    seen = {}
    handle = model.temporal_blocks()[block].register_forward_hook(lambda module, args, out: seen.update(out=out))
    try:
        with torch.no_grad():
            model(clip)
    finally:
        handle.remove()
    return seen["out"]


def test_the_switches_keep_todays_defaults_and_refuse_bad_values():
    config = VideoNetConfig(backbone="slowfast", num_frames=16)
    assert (config.slow_sampling, config.slowfast_pool, config.slowfast_alpha) == ("stride", "ceil", 4)
    assert VideoNetConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown slowfast_pool 'round'"):
        VideoNetConfig(backbone="slowfast", num_frames=16, slowfast_pool="round")
    with pytest.raises(ValueError, match="slowfast needs a clip length divisible by 8, got 12"):
        VideoNetConfig(backbone="slowfast", num_frames=12, slowfast_alpha=8)


def test_alpha_fusion_kernel_and_lateral_norm_shape_the_model():
    model = create_model("demo_slowfast_r50", num_classes=3, num_frames=16, slowfast_alpha=8,
                         slowfast_fusion_kernel=5, slowfast_lateral_norm=False)
    lateral = model.backbone.fuse_stem.lateral
    assert [type(m).__name__ for m in lateral] == ["Conv3d"]        # MMAction2: no BN, no ReLU
    assert lateral[0].kernel_size == (5, 1, 1) and lateral[0].stride == (8, 1, 1)
    assert model.backbone.slow_index.tolist() == [0, 8]
    slow_only = create_model("demo_slowfast_r50", num_classes=3, num_frames=4, slowfast_alpha=1,
                             slowfast_fast_pathway=False)
    assert not any(name.startswith("backbone.fast") for name in slow_only.state_dict())
    assert slow_only.head.in_features == 512                       # 2048 × 0.25: the Slow pathway alone
    with torch.no_grad():
        assert slow_only(torch.randn(1, 3, 4, 64, 64)).shape == (1, 3)
