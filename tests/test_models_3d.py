"""The 2-D blocks' maths facts, checked again on the 3-D backbones (SlowFast-R50 and I3D-R50).

Small models (width ×0.25, 16 frames), batch 2 and a non-square 112×144
clip: res3 is 14×18 and res4 7×9, so a swapped y/x, a (b t)↔(t b) mix-up
or the wrong rounding of the odd grid changes the numbers. The backbone's
BatchNorm statistics are random around those of a calibration clip, so the
logits depend on the input (`calibrate_norms`); the blocks' own closing
BatchNorm keeps its zero γ where a test needs fresh blocks, and gets a
non-zero one (`activate_blocks`) elsewhere.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F

from gta_core import capture, create_model
from gta_core.records import DecoupledRecord, GTARecord, NonLocalRecord
from tests.helpers import activate_blocks, calibrate_norms, one_thread, project  # noqa: F401  (module fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

B, FRAMES = 2, 16
CLIP = torch.randn(B, 3, FRAMES, 112, 144, generator=torch.Generator().manual_seed(0))
CALIBRATION = torch.randn(B, 3, FRAMES, 112, 144, generator=torch.Generator().manual_seed(1))
GRIDS = {"res3": (14, 18), "res4": (7, 9)}
WITH_BLOCKS = ["slowfast_r50_nl", "slowfast_r50_dnl", "slowfast_r50_tape", "slowfast_r50_gta", "i3d_r50_nl"]
# SlowFast's Slow pathway samples every 4th frame; I3D's res3-res5 steps are 8 frames each.
SPANS = {"slowfast": ((0, 4), (4, 8), (8, 12), (12, 16)), "i3d": ((0, 8), (8, 16))}


def small(name: str) -> torch.nn.Module:
    """`name` at width ×0.25 and 16 frames, random backbone statistics, fresh (identity) blocks."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, width_multiplier=0.25, num_frames=FRAMES)
    return calibrate_norms(model, CALIBRATION)


@functools.cache
def active(name: str) -> torch.nn.Module:
    """`small(name)` with every block switched on (non-zero γ); shared by the tests, which do not change it."""
    return activate_blocks(small(name), seed=1)


def backbone_kind(name: str) -> str:
    return name.split("_")[0]


def block_inputs(model: torch.nn.Module, clip: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and the (B·T', C, H, W) features entering each block, read with forward pre-hooks."""
    seen = {}
    handles = [block.register_forward_pre_hook(lambda mod, args, key=name: seen.__setitem__(key, args[0].detach()))
               for name, block in model.temporal_blocks().items()]
    try:
        with torch.no_grad():
            logits = model(clip)
    finally:
        for handle in handles:
            handle.remove()
    return logits, seen


@pytest.mark.parametrize("name", WITH_BLOCKS)
def test_fresh_blocks_are_the_identity(name):
    """Zero-init γ: the model with blocks computes what the backbone without them computes."""
    model = small(name)
    plain = small(name.rsplit("_", 1)[0])                 # e.g. slowfast_r50_nl -> slowfast_r50
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if ".attention." not in k})
    with torch.no_grad():
        assert torch.equal(model(CLIP), plain(CLIP))


def _assert_distributions(weights: torch.Tensor) -> None:
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))


def _check_record(record, steps: int) -> None:
    """Shapes over T' time steps, and every attention row / region map a distribution."""
    grid = GRIDS[record.name.split(".")[-2]]
    if isinstance(record, NonLocalRecord):
        assert (record.num_steps, record.grid) == (steps, grid)
        assert record.weights.shape == (B, steps * math.prod(grid), steps * math.prod(record.key_grid))
        _assert_distributions(record.weights)
        return
    assert record.spatial.weights.shape[:3] == (B, steps, math.prod(grid))
    _assert_distributions(record.spatial.weights)
    if isinstance(record, DecoupledRecord):
        assert record.temporal.weights.shape == (B, *grid, steps, steps)
        _assert_distributions(record.temporal.weights)
    if isinstance(record, GTARecord):
        assert record.regions.shape[:2] == (B, steps) and record.regions.shape[-2:] == grid
        _assert_distributions(record.regions.flatten(-2))
        assert record.pixel_matrix.shape[-2:] == (steps, steps)


@pytest.mark.parametrize("name", WITH_BLOCKS)
def test_records_have_time_steps_and_frame_spans_and_rows_sum_to_one(name):
    model = active(name)
    result = capture(model, CLIP)
    with torch.no_grad():
        plain = model(CLIP)
    # Capture takes the explicit softmax path, a plain forward the fused kernel (layers/common.attend).
    torch.testing.assert_close(result.logits, plain, rtol=1e-5, atol=1e-5 * float(plain.abs().max()))
    prefix = "slow." if backbone_kind(name) == "slowfast" else ""
    assert list(result.records) == [f"{prefix}res3.1", f"{prefix}res3.3", f"{prefix}res4.1", f"{prefix}res4.3",
                                    f"{prefix}res4.5"]
    spans = SPANS[backbone_kind(name)]
    for record in result.records.values():
        assert record.frame_spans == spans
        _check_record(record, len(spans))


# name: (the block, φ/g pooled before their projection (PySlowFast), ceil rounding, scaled softmax)
NL_MATHS = {"slowfast_r50_nl": ("slow.res4.3", True, True, True), "i3d_r50_nl": ("res4.3", False, False, False)}
QUERIES = [(0, 0, 0, 0), (1, -1, 6, 8), (1, 1, 2, 7), (0, 0, 5, 1)]       # (b, t, y, x) on res4's 7×9 grid


@pytest.mark.parametrize("name", sorted(NL_MATHS))
def test_nl_rows_equal_the_direct_softmax(name):
    """softmax(θφᵀ[/√C']) over all T'·h·w keys of the clip, written out from the block's weights."""
    block_name, pool_first, ceil, scaled = NL_MATHS[name]
    model = active(name)
    block = model.temporal_blocks()[block_name]
    _, inputs = block_inputs(model, CLIP)
    record = capture(model, CLIP).records[block_name]
    x, steps = inputs[block_name], len(SPANS[backbone_kind(name)])

    def pool(z):
        return F.max_pool2d(z, 2, 2, ceil_mode=ceil)

    keys = project(block.key, pool(x)) if pool_first else pool(project(block.key, x))   # (B·T', C', h, w)
    assert record.key_grid == tuple(keys.shape[-2:]) == ((4, 5) if ceil else (3, 4))
    queries = project(block.query, x)
    for b, t, y, xq in QUERIES:
        t = t % steps
        clip_keys = keys[b * steps:(b + 1) * steps].permute(0, 2, 3, 1).reshape(-1, keys.shape[1])  # (T'·h·w, C')
        scores = clip_keys @ queries[b * steps + t, :, y, xq]
        expected = torch.softmax(scores / (math.sqrt(block.inner_channels) if scaled else 1.0), dim=0)
        torch.testing.assert_close(record.row(t, y, xq, batch=b).flatten(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", WITH_BLOCKS)
def test_forward_from_block_equals_the_full_forward(name):
    model = active(name)
    logits, inputs = block_inputs(model, CLIP)
    for block_name, block_input in inputs.items():
        with torch.no_grad():
            resumed = model.forward_from_block(block_name, block_input, CLIP)
        torch.testing.assert_close(resumed, logits, rtol=1e-5, atol=1e-5, msg=block_name)


@pytest.mark.parametrize("name", ["i3d_r50", "i3d_r50_nl", "slowfast_r50", "slowfast_r50_nl", "slowfast_r50_dnl",
                                  "slowfast_r50_gta"])
def test_every_3d_model_sees_frame_order(name):
    """Temporal convolutions are not symmetric (and SlowFast samples other frames of a reversed clip):
    unlike R2D and R2D + NL, reversing the frames changes the logits, with or without blocks."""
    model = active(name)
    with torch.no_grad():
        logits, reversed_logits = model(CLIP), model(CLIP.flip(2))
    assert (reversed_logits - logits).abs().max() > 1e-3 * logits.abs().max()
