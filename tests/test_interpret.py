"""Attributions, order probe and knockouts (gta_core.interpret) on tiny demo models at 64².

Random-weight demo checkpoints (blocks switched on, like the app's fixtures)
saved and loaded through the checkpoint format, and a clip of the temporal
synthetic set (assets/synth) read as those checkpoints ask.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gta_core import CheckpointConfig, create_model, load_checkpoint, save_checkpoint
from gta_core.interpret import (
    ORDERS,
    Component,
    frame_occlusion,
    frame_orders,
    grad_cam,
    has_hooks,
    integrated_gradients,
    knocked_out,
    knockout,
    knockout_components,
    occlude_frames,
    order_probe,
)
from gta_core.video import read_clip

from .helpers import activate_blocks, one_thread  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
TEMPORAL_CLIP = ROOT / "assets/synth/temporal__moving_something_from_left_to_right.webm"
CLASSES = [f"class {i}" for i in range(12)]
SIZE = 64
IG_TOLERANCE = 0.01        # |Σ attributions − (F(x) − F(baseline))| ≤ 1% of |F(x) − F(baseline)|


def demo_checkpoint(folder: Path, name: str, seed: int, activate: bool = True):
    torch.manual_seed(seed)
    model = create_model(name, num_classes=len(CLASSES))
    if activate:
        activate_blocks(model, seed)
    config = CheckpointConfig(
        architecture=model.config.to_dict(), class_names=CLASSES, model_name=name,
        input_size=SIZE, resize_shorter=72, provenance={"random_weights": True, "seed": seed},
    )
    save_checkpoint(folder / name, model, config)
    return load_checkpoint(folder / name)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interpret_checkpoints")
    names = ("demo_r2d18_nl", "demo_r2d18_dnl", "demo_r2d18_tape", "demo_r2d18_gta")
    return {name: demo_checkpoint(folder, name, seed) for seed, name in enumerate(names, start=1)}


@pytest.fixture(scope="module")
def clip(checkpoints) -> torch.Tensor:
    spec = checkpoints["demo_r2d18_gta"].config.clip_spec()
    return read_clip(TEMPORAL_CLIP, spec).tensor                       # (3, 8, 64, 64)


def state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_untouched(model, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not has_hooks(model)
    assert all(p.requires_grad for p in model.parameters())           # the caller's flags, not the copy's


# --------------------------------------------------------------------------- attributions


def test_integrated_gradients_completeness_on_a_demo_checkpoint(checkpoints, clip):
    model = checkpoints["demo_r2d18_gta"].model
    before = state(model)
    result = integrated_gradients(model, clip, steps=32, internal_batch_size=8)
    difference = result.score - result.baseline_score
    total = float(result.maps.astype(np.float64).sum())
    assert abs(difference) > 1e-3                                      # a real score difference to explain
    assert abs(total - difference) <= IG_TOLERANCE * abs(difference)
    assert np.isclose(total - difference, result.delta, atol=1e-6)   # captum's delta is that same gap
    assert result.maps.shape == (8, SIZE, SIZE)
    assert np.isclose(result.per_frame.sum(), total, rtol=1e-4)
    assert np.isclose(result.mass.sum(), 1.0)
    with torch.no_grad():
        assert result.target == int(model(clip[None]).argmax())       # the predicted class by default
    assert_untouched(model, before)


def test_integrated_gradients_internal_batch_size_does_not_change_the_result(checkpoints, clip):
    model = checkpoints["demo_r2d18_nl"].model
    small = integrated_gradients(model, clip, target=3, steps=4, internal_batch_size=1)
    large = integrated_gradients(model, clip, target=3, steps=4, internal_batch_size=4)
    assert small.target == large.target == 3
    np.testing.assert_allclose(small.maps, large.maps, rtol=1e-4, atol=1e-7)


def test_grad_cam_is_additive_on_the_last_stage(checkpoints, clip):
    # With average consensus and a linear head after pooling, the pre-ReLU maps
    # summed over frames and pixels are exactly the class logit minus the head's bias.
    model = checkpoints["demo_r2d18_gta"].model
    before = state(model)
    result = grad_cam(model, clip, target=5)
    assert result.maps.shape == (8, 2, 2)                              # res5 of a 64² input
    bias = float(model.head.bias[5].detach())
    assert np.isclose(result.maps.sum() + bias, result.score, atol=1e-5)
    assert np.isclose(result.per_frame.sum() + bias, result.score, atol=1e-5)
    assert (result.positive_maps >= 0).all()
    assert_untouched(model, before)


def test_no_hook_is_left_even_when_captum_fails_on_the_callers_model(checkpoints, clip, monkeypatch):
    # Force the unsafe path (no private copy) and make the forward fail after
    # LayerGradCam has hooked res5: captum must still remove its hook.
    model = checkpoints["demo_r2d18_dnl"].model
    monkeypatch.setattr("gta_core.interpret.private_copy", lambda m: m)

    def broken_head(features):
        raise RuntimeError("head failed")

    monkeypatch.setattr(model, "forward_head", broken_head)
    with pytest.raises(RuntimeError, match="head failed"):
        grad_cam(model, clip, target=0)
    assert not has_hooks(model)


def test_occluded_frames_are_replaced_by_neighbours_or_the_mean():
    batch = torch.arange(5, dtype=torch.float32).reshape(1, 1, 5, 1, 1).expand(1, 3, 5, 2, 2)
    occluded = occlude_frames(batch, "neighbours")                     # (T, 3, T, H, W)
    values = occluded[:, 0, :, 0, 0]                                   # (clip, frame)
    expected = torch.arange(5.0).repeat(5, 1)
    expected[torch.arange(5), torch.arange(5)] = torch.tensor([1.0, 1.0, 2.0, 3.0, 3.0])
    assert torch.equal(values, expected)
    mean = occlude_frames(batch, "mean")[:, 0, :, 0, 0]
    assert torch.equal(mean.diagonal(), torch.full((5,), 2.0))


def test_frame_occlusion_of_a_still_clip_changes_nothing(checkpoints):
    still = torch.randn(3, 1, SIZE, SIZE).expand(3, 8, SIZE, SIZE)
    result = frame_occlusion(checkpoints["demo_r2d18_gta"].model, still, fill="neighbours")
    assert result.drop.shape == (8,)
    assert np.abs(result.drop).max() < 1e-5
    moving = frame_occlusion(checkpoints["demo_r2d18_gta"].model, torch.randn(3, 8, SIZE, SIZE), fill="mean")
    assert np.abs(moving.drop).max() > 1e-4


# --------------------------------------------------------------------------- order probe


def test_order_probe_moves_tape_and_gta_but_not_nl_or_dnl(checkpoints, clip):
    models = {name: ckpt.model for name, ckpt in checkpoints.items()}
    probes = order_probe(models, clip, seed=0)
    orders = probes["demo_r2d18_gta"].orders
    assert list(orders) == list(ORDERS)
    assert orders["reversed"] == list(range(7, -1, -1))
    assert sorted(orders["shuffled"]) == list(range(8)) and orders["shuffled"] not in (orders["original"], orders["reversed"])
    for name in ("demo_r2d18_nl", "demo_r2d18_dnl"):                   # exactly invariant, up to float error
        for order in ("reversed", "shuffled"):
            assert probes[name].max_logit_change(order) < 1e-5, (name, order)
            assert not probes[name].top1_changed(order)
    for name in ("demo_r2d18_tape", "demo_r2d18_gta"):
        for order in ("reversed", "shuffled"):
            assert probes[name].max_logit_change(order) > 1e-4, (name, order)
    gta = probes["demo_r2d18_gta"]
    assert abs(gta.score_change("reversed")) > 1e-4
    assert gta.target_scores[0] == gta.logits[0].max()


def test_frame_orders_are_seeded():
    assert frame_orders(8, seed=3) == frame_orders(8, seed=3)
    assert frame_orders(8, seed=3)["shuffled"] != frame_orders(8, seed=4)["shuffled"]


# --------------------------------------------------------------------------- knockout


def test_knockout_components_of_a_demo_gta():
    model = create_model("demo_r2d18_gta", num_classes=4)
    components = knockout_components(model)
    labels = [c.label for c in components]
    # Per block: block, spatial, temporal; per branch: the branch, G=4 heads, G=4 groups; K regions.
    regions = {"res3.1": 32 // 8, "res4.1": 64 // 8}
    assert len(components) == sum(3 + 2 * (1 + 4 + 4) + k for k in regions.values())
    assert "res3.1 pixel head 3" in labels and "res4.1 region 7" in labels and "res3.1 region GTA" in labels


def test_knocking_out_components_with_zero_output_weights_changes_nothing(clip):
    torch.manual_seed(0)
    model = activate_blocks(create_model("demo_r2d18_gta", num_classes=6)).eval()
    gta = model.temporal_blocks()["res3.1"].global_temporal
    # Heads concatenate along the value channels, head k = channels [k·c, (k+1)·c); groups split them alike.
    pixel_c = gta.pixel_out.in_channels // gta.groups
    region_c = gta.region_value.out_channels // gta.groups
    with torch.no_grad():
        gta.pixel_out.weight[:, 2 * pixel_c : 3 * pixel_c] = 0         # head 2's output weights (W_P^O columns)
        gta.region_value.weight[region_c : 2 * region_c] = 0           # group 1's region values V_1 = 0
        gta.region_value.bias[region_c : 2 * region_c] = 0
    results = {r.component.label: r for r in knockout(model, clip)}
    assert np.abs(results["res3.1 pixel head 2"].delta).max() < 1e-6
    assert np.abs(results["res3.1 region group 1"].delta).max() < 1e-6
    # ... while the heads and groups that do carry weight move the scores.
    assert np.abs(results["res3.1 pixel head 1"].delta).max() > 1e-5
    assert np.abs(results["res3.1 region group 0"].delta).max() > 1e-5
    assert np.abs(results["res4.1 block"].delta).max() > 1e-5

    fresh = create_model("demo_r2d18_gta", num_classes=6).eval()      # zero-init γ: every block is the identity
    for result in knockout(fresh, clip, [Component("res3.1", "block"), Component("res4.1", "temporal")]):
        assert np.abs(result.delta).max() < 1e-6


def test_dropping_every_region_equals_dropping_region_gta(clip):
    torch.manual_seed(1)
    model = activate_blocks(create_model("demo_r2d18_gta", num_classes=6)).eval()
    gta = model.temporal_blocks()["res3.1"].global_temporal
    batch = clip[None]
    with torch.no_grad(), knocked_out(model, Component("res3.1", "region_branch")):
        without_branch = model(batch)
    with torch.no_grad(), contextlib_all(model, [Component("res3.1", "region", k) for k in range(gta.num_regions)]):
        without_regions = model(batch)
    torch.testing.assert_close(without_regions, without_branch, rtol=1e-5, atol=1e-6)


def contextlib_all(model, components):
    import contextlib

    stack = contextlib.ExitStack()
    for component in components:
        stack.enter_context(knocked_out(model, component))
    return stack


def test_knocked_out_restores_the_model_after_an_error(clip):
    model = activate_blocks(create_model("demo_r2d18_gta", num_classes=6)).eval()
    before = state(model)
    with pytest.raises(RuntimeError, match="inside"):
        with knocked_out(model, Component("res4.1", "head", 1, "pixel")), knocked_out(model, Component("res3.1", "region", 2)):
            assert not torch.equal(model.temporal_blocks()["res4.1"].global_temporal.pixel_matrix, before[
                "backbone.res4.1.attention.temporal.pixel_matrix"])
            raise RuntimeError("inside")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not has_hooks(model)
    with pytest.raises(ValueError, match="NL block has no head part"):
        with knocked_out(create_model("demo_r2d18_nl", num_classes=2), Component("res3.1", "head", 0, "pixel")):
            pass


def test_knockout_leaves_the_callers_model_untouched(checkpoints, clip):
    model = checkpoints["demo_r2d18_dnl"].model
    before = state(model)
    results = knockout(model, clip)
    assert [r.component.part for r in results] == ["block", "spatial", "temporal"] * 2
    assert all(np.array_equal(r.logits, results[0].logits) for r in results)
    assert_untouched(model, before)


@pytest.mark.parametrize("name", ["demo_r2d18_gta", "demo_r2d18_nl", "demo_r2d18_dnl"])
def test_knockout_from_the_cached_block_input_equals_a_full_forward(checkpoints, clip, name):
    """The sweep runs each knockout from its block's cached input; a full forward must give the same logits."""
    from gta_core.interpret import knocked_out, knockout_components

    model = checkpoints[name].model
    results = knockout(model, clip)
    assert len(results) == len(knockout_components(model)) and len(results) >= 2
    for result in results:
        with knocked_out(model, result.component), torch.inference_mode():
            full = model(clip[None] if clip.dim() == 4 else clip)[0].float().numpy()
        np.testing.assert_allclose(result.knocked_logits, full, rtol=1e-5, atol=1e-5, err_msg=result.component.label)
    assert any(not np.allclose(r.knocked_logits, r.logits) for r in results)   # knockouts do something


SHIPPED = ROOT / "checkpoints"
UNCOVERING_CLIP = ROOT / "assets/synth/temporal__uncovering_something.webm"


def shipped_clip(checkpoint, path=UNCOVERING_CLIP) -> torch.Tensor:
    return read_clip(path, checkpoint.config.clip_spec()).tensor


def test_integrated_gradients_completeness_on_the_shipped_gta():
    checkpoint = load_checkpoint(SHIPPED / "temporal_r2d18_gta")
    # A trained model's path integral is less smooth than a random one's: at 32 steps the gap was
    # 1.2%, at 128 steps 0.12% of F(x) - F(baseline); the tolerance stays at 1%.
    result = integrated_gradients(checkpoint.model, shipped_clip(checkpoint), steps=128, internal_batch_size=16)
    difference = result.score - result.baseline_score
    assert checkpoint.config.class_names[result.target] == "Uncovering something"
    assert difference > 1.0
    assert abs(float(result.maps.astype(np.float64).sum()) - difference) <= IG_TOLERANCE * abs(difference)


def test_order_probe_on_the_shipped_checkpoints():
    """The paper's argument on a bundled clip: NL and DNL do not move, TAPE and GTA do."""
    names = ("temporal_r2d18_nl", "temporal_r2d18_dnl", "temporal_r2d18_tape", "temporal_r2d18_gta")
    loaded = {name: load_checkpoint(SHIPPED / name) for name in names}
    probes = order_probe({n: c.model for n, c in loaded.items()}, {n: shipped_clip(c) for n, c in loaded.items()})
    for name, probe in probes.items():
        change = np.abs(probe.logits[1:] - probe.logits[0]).max()
        label = [loaded[name].config.class_names[i] for i in probe.top1]
        if name.endswith(("_nl", "_dnl")):
            assert change < 1e-4, (name, change)
            assert label[0] == label[1] == label[2]
        else:
            assert change > 1.0, (name, change)
            assert label[0] == "Uncovering something" and label[1] == "Covering something with something"
