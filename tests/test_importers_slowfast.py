"""MMAction2 1.2.0 builds SlowFast-R50 (both Kinetics-400 recipes) and SlowOnly-R50; our CLI imports its files.

As for I3D (tests/test_importers_3d.py): random weights, BatchNorm statistics
random around those of a calibration clip, the files saved as MMAction2
publishes them (`state_dict` + `meta` with the config text), imported with the
CLI, logits compared to 1e-4 of the largest on a non-square clip. The Slow
pathway is 16 channels wide (Fast: 2), so a model runs in well under a second.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from gta_core import capture, load_checkpoint
from gta_core.__main__ import main as cli_main
from gta_core.models import VideoNet
from tests.helpers import (  # noqa: F401  (one_thread: module fixture)
    RELATIVE_TOLERANCE, assert_import_refused, assert_same_logits, logit_gap, one_thread,
)
from tests.peers import mmaction as peer

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = 16            # the Slow pathway's base_channels (published: 64)
FRAMES = 32          # SampleFrames clip_len of both recipes
FILES = {"4x16x1": "slowfast_r50_8xb8-4x16x1-256e_kinetics400-rgb.pth",
         "8x8x1": "slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb.pth"}


def config_text(alpha: int, fusion_kernel: int) -> str:
    """The config MMAction2 keeps in meta['cfg'], abridged to the backbone, head and sampling."""
    return (
        "model = dict(type='Recognizer3D', backbone=dict(type='ResNet3dSlowFast', pretrained=None, "
        f"resample_rate={alpha}, speed_ratio={alpha}, channel_ratio=8, slow_pathway=dict(type='resnet3d', "
        f"depth=50, lateral=True, fusion_kernel={fusion_kernel}, conv1_kernel=(1, 7, 7), inflate=(0, 0, 1, 1)), "
        "fast_pathway=dict(type='resnet3d', depth=50, lateral=False, base_channels=8, conv1_kernel=(5, 7, 7))), "
        "cls_head=dict(type='SlowFastHead', in_channels=2304, num_classes=400, spatial_type='avg'))\n"
        "train_pipeline = [dict(type='SampleFrames', clip_len=32, frame_interval=2, num_clips=1)]\n"
    )


def clip(frames: int, height: int, width: int, seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, frames, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=sorted(peer.SLOWFAST_RECIPES))
def slowfast(request, tmp_path_factory):
    """(recipe, MMAction2 model, our import) for each published recipe, imported with the CLI."""
    recipe = request.param
    switches = peer.SLOWFAST_RECIPES[recipe]
    folder = tmp_path_factory.mktemp(f"slowfast_{recipe}")
    model = peer.slowfast_r50(num_classes=400, base_channels=BASE, **switches)
    source = folder / FILES[recipe]
    peer.save_as_published(model, str(source), config_text(**switches))
    # In-process (the reader is still a child process); tests/test_importers_timesformer.py runs the CLI as a command.
    assert cli_main(["import", "mmaction2", str(source), "--out", str(folder / "ours")]) == 0
    return recipe, model, load_checkpoint(folder / "ours")


def test_mmaction2_slowfast_logits(slowfast):
    _, model, checkpoint = slowfast
    inputs = clip(FRAMES, 96, 128, seed=4)              # non-square: res4 is 6×8, res5 3×4
    with torch.no_grad():
        assert_same_logits(checkpoint.model(inputs), peer.logits_3d(model, inputs))


def test_slowfast_import_reads_the_recipe(slowfast):
    recipe, _, checkpoint = slowfast
    arch, provenance = checkpoint.config.model_config(), checkpoint.config.provenance
    alpha, kernel = peer.SLOWFAST_RECIPES[recipe]["alpha"], peer.SLOWFAST_RECIPES[recipe]["fusion_kernel"]
    assert (arch.backbone, arch.slowfast_alpha, arch.slowfast_fusion_kernel) == ("slowfast", alpha, kernel)
    assert (arch.slowfast_lateral_norm, arch.slowfast_fast_pathway, arch.slow_sampling) == (False, True, "stride")
    assert (arch.width_multiplier, arch.num_frames, arch.num_classes) == (0.25, 32, 400)
    assert checkpoint.config.model_name == "MMAction2 SlowFast-R50"
    assert provenance["assumed"]["alpha"] == f"α = {alpha} (speed_ratio = resample_rate, read from the config text)"
    assert checkpoint.model.time_spans("slow.res4.0")[:2] == ((0, alpha), (alpha, 2 * alpha))


def test_the_slowfast_recipe_switches_move_the_logits(slowfast):
    """The other recipe's α, PySlowFast's lateral BN-free... each switch flipped alone moves the logits."""
    recipe, model, checkpoint = slowfast
    inputs = clip(FRAMES, 96, 128, seed=5, batch=1)
    theirs = peer.logits_3d(model, inputs)
    other_alpha = {"4x16x1": 4, "8x8x1": 8}[recipe]
    for change in ({"slowfast_alpha": other_alpha}, {"slow_sampling": "linspace"}):
        variant = VideoNet(dataclasses.replace(checkpoint.config.model_config(), **change))
        variant.load_state_dict(checkpoint.model.state_dict())
        with torch.no_grad():
            gap = logit_gap(variant.eval()(inputs), theirs)
        assert gap > 10 * RELATIVE_TOLERANCE, (change, gap)
    # SlowFastHead's [Fast | Slow] columns read as ours [Slow | Fast] without the swap.
    state = checkpoint.model.state_dict()
    fast = 32 * BASE // 8
    unswapped = torch.cat([state["head.weight"][:, -fast:], state["head.weight"][:, :-fast]], dim=1)
    variant = VideoNet(checkpoint.config.model_config())
    variant.load_state_dict({**state, "head.weight": unswapped})
    with torch.no_grad():
        assert logit_gap(variant.eval()(inputs), theirs) > 10 * RELATIVE_TOLERANCE



def test_non_local_blocks_in_the_slow_pathway_are_read_off_the_keys(tmp_path):
    """mmcv's NonLocal3d in the Slow pathway, after residual blocks 0 and 2 of res3 and 0, 2, 4 of res4 (ours
    defaults to 1, 3 / 1, 3, 5): positions and variant off the keys, logits on an odd 7×9 res4 grid."""
    model = peer.slowfast_r50(num_classes=5, base_channels=BASE, alpha=4, fusion_kernel=7, non_local=peer.NL_POSITIONS)
    source = tmp_path / FILES["8x8x1"]
    peer.save_as_published(model, str(source), config_text(4, 7))
    assert cli_main(["import", "mmaction2", str(source), "--out", str(tmp_path / "ours")]) == 0
    checkpoint = load_checkpoint(tmp_path / "ours")
    arch = checkpoint.config.model_config()
    positions = tuple((stage, tuple(indices)) for stage, indices in arch.block_positions)
    assert (arch.block, positions) == ("nl", (("res3", (0, 2)), ("res4", (0, 2, 4))))
    assert (arch.nl_pool, arch.nl_pool_ceil, arch.nl_scale, arch.nl_mode) == ("after", False, False, "embedded_gaussian")
    inputs = clip(FRAMES, 112, 144, seed=6)
    with torch.no_grad():
        assert_same_logits(checkpoint.model(inputs), peer.logits_3d(model, inputs))
        without = VideoNet(dataclasses.replace(arch, block="none"))
        without.load_state_dict({k: v for k, v in checkpoint.model.state_dict().items() if ".attention." not in k})
        assert logit_gap(without.eval()(inputs), peer.logits_3d(model, inputs)) > 10 * RELATIVE_TOLERANCE
    record = capture(checkpoint.model, inputs[:1]).records["slow.res4.2"]
    assert (record.grid, record.key_grid) == ((7, 9), (3, 4))          # floor pooling, as mmcv's MaxPool3d
    assert record.row(t=1, y=6, x=8).sum().item() == pytest.approx(1.0, abs=1e-5)

def test_fusion_kernel_is_read_off_the_weights_and_alpha_off_the_file_name(tmp_path):
    """No config in the file: the lateral kernel (7) comes off the weights, α (4) off the recipe tag."""
    model = peer.slowfast_r50(num_classes=7, base_channels=BASE, alpha=4, fusion_kernel=7)
    source = tmp_path / FILES["8x8x1"]
    torch.save({"state_dict": model.state_dict()}, source)
    assert cli_main(["import", "mmaction2", str(source), "--out", str(tmp_path / "ours")]) == 0
    checkpoint = load_checkpoint(tmp_path / "ours")
    arch = checkpoint.config.model_config()
    assert (arch.slowfast_alpha, arch.slowfast_fusion_kernel, arch.num_frames) == (4, 7, 32)   # 8 Slow frames × α
    assert "8x8x1 recipe named in the file name" in checkpoint.config.provenance["assumed"]["alpha"]
    inputs = clip(FRAMES, 80, 112, seed=6, batch=1)
    with torch.no_grad():
        assert_same_logits(checkpoint.model(inputs), peer.logits_3d(model, inputs))


def test_mmaction2_slowonly(tmp_path):
    model = peer.slowonly_r50(num_classes=9, base_channels=BASE)
    source = tmp_path / "slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.pth"
    peer.save_as_published(model, str(source), "train_pipeline = [dict(type='SampleFrames', clip_len=8, "
                           "frame_interval=8, num_clips=1)]\n")
    assert cli_main(["import", "mmaction2", str(source), "--out", str(tmp_path / "ours")]) == 0
    checkpoint = load_checkpoint(tmp_path / "ours")
    arch = checkpoint.config.model_config()
    assert (arch.backbone, arch.slowfast_fast_pathway, arch.slowfast_alpha, arch.num_frames) == ("slowfast", False, 1, 8)
    assert checkpoint.config.model_name == "MMAction2 SlowOnly-R50"
    inputs = clip(8, 96, 128, seed=7)
    with torch.no_grad():
        assert_same_logits(checkpoint.model(inputs), peer.logits_3d(model, inputs))
    assert capture(checkpoint.model, inputs[:1]).logits.shape == (1, 9)


def test_slowfast_differences_ours_cannot_represent_are_refused(tmp_path, capsys):
    model = peer.slowfast_r50(num_classes=5, base_channels=BASE, alpha=8, fusion_kernel=5)
    source = tmp_path / "slowfast.pth"
    peer.save_as_published(model, str(source), config_text(8, 5).replace("resample_rate=8", "resample_rate=16"))
    assert_import_refused(["mmaction2", str(source)], tmp_path / "out", "resample_rate τ=16 and speed_ratio α=8 differ",
                          capsys)
    state = dict(model.state_dict())
    state["backbone.fast_path.conv1.conv.weight"] = state["backbone.fast_path.conv1.conv.weight"][:1]
    torch.save({"state_dict": state}, source)
    assert_import_refused(["mmaction2", str(source)], tmp_path / "out", "channel_ratio 16; ours is 8", capsys)
    state = dict(model.state_dict())
    state["backbone.fast_path.layer2.0.non_local_block.theta.conv.weight"] = torch.zeros(1, 1, 1, 1, 1)
    torch.save({"state_dict": state}, source)
    assert_import_refused(["mmaction2", str(source)], tmp_path / "out",
                          "non-local blocks on the Fast pathway; ours sit on the Slow pathway only", capsys)
