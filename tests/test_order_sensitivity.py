"""The Order probe view's claim, "this model can / cannot tell frame orders apart"
(interpret.order_sensitivity, read off the config), checked against the model.

For every backbone and block: a small model with generic weights (random
BatchNorm statistics around measured ones, blocks switched on, TimeSformer's
zero-initialised embeddings made random) runs the probe the app runs
(order_probe_one: original, reversed, shuffled frames). A model said to be
order-invariant must give the same logits (within float error, 1e-5 of the
largest); one said to see order must move them by more than 1e-3 of the largest.
"""
from __future__ import annotations

import pytest
import torch

from gta_core import create_model
from gta_core.interpret import order_probe_one, order_sensitivity
from gta_core.models import VideoNet, VideoNetConfig
from tests.helpers import activate_blocks, calibrate_norms, one_thread  # noqa: F401  (module fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_3D = dict(num_classes=5, width_multiplier=0.25, num_frames=16)
MODELS = {
    **{name: (lambda name=name: create_model(name, num_classes=5), (8, 64, 80)) for name in (
        "demo_r2d18", "demo_r2d18_nl", "demo_r2d18_sa", "demo_r2d18_ta", "demo_r2d18_dnl",
        "demo_r2d18_tape", "demo_r2d18_gta", "demo_r2d18_tsm")},
    "i3d_r50_nl": (lambda: create_model("i3d_r50_nl", **SMALL_3D), (16, 64, 80)),
    "slowfast_r50_dnl": (lambda: create_model("slowfast_r50_dnl", **SMALL_3D), (16, 64, 80)),
    **{arch: (lambda arch=arch: VideoNet(VideoNetConfig(backbone="video_resnet", video_resnet=arch, num_frames=8,
                                                        num_classes=5)), (8, 48, 64))
       for arch in ("r3d_18", "mc3_18", "r2plus1d_18")},
    "s3d": (lambda: VideoNet(VideoNetConfig(backbone="s3d", num_frames=16, num_classes=5)), (16, 64, 96)),
    "timesformer": (lambda: VideoNet(VideoNetConfig(
        backbone="timesformer", num_frames=4, input_size=32, tsf_patch_size=8, tsf_hidden_size=32, tsf_layers=2,
        tsf_heads=4, tsf_mlp_size=64, num_classes=5, dropout=0.0)), (4, 32, 32)),
    # MViTv2 with mvit_v2_s's switches, three small blocks (its relative-position tables start at zero).
    "mvit": (lambda: VideoNet(VideoNetConfig(
        backbone="mvit", num_frames=8, num_classes=5, dropout=0.0, mvit_trained_size=(8, 64),
        mvit_blocks=((1, 16, 16, 1, 8), (2, 16, 32, 2, 4), (2, 32, 32, 1, 4)))), (8, 64, 64)),
}


def generic(model: VideoNet, shape: tuple[int, int, int]) -> VideoNet:
    calibrate_norms(model, torch.randn(2, 3, *shape, generator=torch.Generator().manual_seed(1)))
    activate_blocks(model, seed=1)
    if model.config.backbone == "timesformer":     # CLS, position and time embeddings start at zero
        generator = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.eval()


@pytest.mark.parametrize("name", MODELS)
def test_order_sensitivity_says_what_the_probe_measures(name):
    build, shape = MODELS[name]
    torch.manual_seed(0)
    model = generic(build(), shape)
    clip = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0))
    probe = order_probe_one(model, clip)
    change = max(probe.max_logit_change(order) for order in ("reversed", "shuffled")) / abs(probe.logits[0]).max()
    sensitive, why = order_sensitivity(model.config)
    if sensitive:
        assert change > 1e-3, f"{name}: said to see order ({why}) but the logits move by {change:.2e}"
    else:
        assert change < 1e-5, f"{name}: said to ignore order ({why}) but the logits move by {change:.2e}"
