"""Registry, placement, frame-order behaviour and capture of whole models."""
import pytest
import torch

from gta_core import capture, create_model, list_models
from gta_core.records import DecoupledRecord, GTARecord, NonLocalRecord
from gta_core.models import temporal_shift

from .helpers import activate_blocks, tiny_clip


def demo(name, **overrides):
    torch.manual_seed(0)
    return activate_blocks(create_model(name, num_classes=7, **overrides)).eval()


def test_registry_has_the_paper_models():
    names = set(list_models())
    for name in ("r2d50", "r2d50_nl", "r2d50_dnl", "r2d50_tape", "r2d50_gta", "r2d50_sa", "r2d50_ta",
                 "r2d18_gta", "r2d34_gta", "r2d50_tsm_gta", "demo_r2d18_gta"):
        assert name in names
    with pytest.raises(KeyError, match="unknown model 'r2d51'"):
        create_model("r2d51")


@pytest.mark.parametrize("depth, expected", [(50, {"res3": (1, 3), "res4": (1, 3, 5)}), (18, {"res3": (1,), "res4": (1,)})])
def test_blocks_after_every_other_residual_block(depth, expected):
    with torch.device("meta"):
        model = create_model(f"r2d{depth}_gta")
    assert model.config.insert_after() == expected
    assert list(model.temporal_blocks()) == [f"{s}.{i}" for s, idx in expected.items() for i in idx]


def test_overrides_and_frame_check():
    model = create_model("demo_r2d18_gta", num_classes=3, num_frames=4)
    assert model(tiny_clip(batch=1, frames=4)).shape == (1, 3)
    with pytest.raises(ValueError, match="exactly 4 frames, got 8"):
        model(tiny_clip(batch=1, frames=8))
    with pytest.raises(ValueError, match="unknown model settings: colour"):
        create_model("demo_r2d18", colour="red")


ORDER_INVARIANT = ["demo_r2d18", "demo_r2d18_nl", "demo_r2d18_sa", "demo_r2d18_ta", "demo_r2d18_dnl"]
ORDER_AWARE = ["demo_r2d18_tape", "demo_r2d18_gta", "demo_r2d18_tsm"]


@pytest.mark.parametrize("name", ORDER_INVARIANT)
def test_order_invariant_models(name):
    """Per-frame convolutions, average consensus and no positional encoding:
    permuting the input frames cannot change the logits."""
    model = demo(name)
    clip = tiny_clip()
    with torch.no_grad():
        logits = model(clip)
        reversed_logits = model(clip.flip(2))
        shuffled_logits = model(clip[:, :, torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])])
    torch.testing.assert_close(reversed_logits, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(shuffled_logits, logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ORDER_AWARE)
def test_order_aware_models(name):
    model = demo(name)
    clip = tiny_clip()
    with torch.no_grad():
        change = (model(clip.flip(2)) - model(clip)).abs().max()
    # Ten times the tolerance within which the order-invariant models agree.
    assert change > 1e-4


def test_temporal_shift_by_hand():
    # B = 1, T = 3, C = 8 (fold = 1), 1×1 pixels; channel c of frame t holds 10·t + c.
    x = torch.tensor([[10.0 * t + c for c in range(8)] for t in range(3)]).reshape(3, 8, 1, 1)
    y = temporal_shift(x, num_frames=3).reshape(3, 8)
    assert y[:, 0].tolist() == [10.0, 20.0, 0.0]     # channel 0 comes from the next frame
    assert y[:, 1].tolist() == [0.0, 1.0, 11.0]      # channel 1 comes from the previous frame
    assert y[:, 2:].tolist() == x.reshape(3, 8)[:, 2:].tolist()


@pytest.mark.parametrize("name, record_type", [
    ("demo_r2d18_nl", NonLocalRecord), ("demo_r2d18_dnl", DecoupledRecord),
    ("demo_r2d18_tape", DecoupledRecord), ("demo_r2d18_gta", GTARecord),
])
def test_capture_matches_plain_forward_and_rows_sum_to_one(name, record_type):
    model = demo(name)
    clip = tiny_clip(size=112)
    with torch.no_grad():
        plain = model(clip)
    result = capture(model, clip)
    # Capture takes the explicit softmax path, a plain forward the fused kernel (layers/common.attend): equal to float tolerance.
    torch.testing.assert_close(result.logits, plain, rtol=1e-5, atol=1e-6)
    assert list(result.records) == ["res3.1", "res4.1"]
    for record in result.records.values():
        assert isinstance(record, record_type)
        if isinstance(record, NonLocalRecord):
            assert record.grid == ((14, 14) if record.name == "res3.1" else (7, 7))   # 112 / 8, 112 / 16
            row = record.row(t=5, y=3, x=4, batch=1)
            assert row.shape == (8, *record.key_grid)
            torch.testing.assert_close(record.weights.sum(-1), torch.ones(record.weights.shape[:2]))
        else:
            spatial = record.spatial
            torch.testing.assert_close(spatial.weights.sum(-1), torch.ones(spatial.weights.shape[:3]))
            assert spatial.map_at(2, 1, 1).shape == spatial.key_grid
        if isinstance(record, DecoupledRecord):
            weights = record.temporal.weights
            torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
            assert record.temporal.weights_at(0, 1, 2).shape == (8,)
            assert record.positional == name.endswith("tape")
        if isinstance(record, GTARecord):
            block = model.temporal_blocks()[record.name].global_temporal
            assert torch.equal(record.pixel_matrix, block.pixel_matrix)
            assert record.regions.shape[:3] == (2, 8, block.num_regions)
            assert sorted(record.regions_by_strength()) == list(range(block.num_regions))
            assert GTARecord.mean_abs(record.pixel_matrix).shape == (8, 8)


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_capture_leaves_no_hook_behind_after_success_and_failure():
    model = demo("demo_r2d18_gta")
    assert _hook_count(model) == 0
    capture(model, tiny_clip(batch=1))
    assert _hook_count(model) == 0
    with pytest.raises(ValueError, match="exactly 8 frames"):
        capture(model, tiny_clip(batch=1, frames=5))
    assert _hook_count(model) == 0

    # A failure inside the forward, after some hooks have fired.
    block = model.temporal_blocks()["res4.1"]
    handle = block.register_forward_pre_hook(lambda m, a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        capture(model, tiny_clip(batch=1))
    handle.remove()
    assert _hook_count(model) == 0


def test_swapped_capture_restores_the_model():
    model = demo("demo_r2d18_dnl")
    clip = tiny_clip(batch=1, size=112)
    normal = capture(model, clip)
    swapped = capture(model, clip, swap_projections=True)
    after = capture(model, clip)
    assert all(r.swapped for r in swapped.records.values())
    assert not any(b.swap_projections for b in model.temporal_blocks().values())
    assert torch.equal(after.logits, normal.logits)
    a = normal.records["res3.1"].spatial.weights
    b = swapped.records["res3.1"].spatial.weights
    assert (a - b).abs().max() > 1e-4
