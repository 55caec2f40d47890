"""The MMAction2 importer on 3-D recognizers: MMAction2 1.2.0 builds I3D-R50(-NL), we import its files.

As for TSM (tests/test_importers.py): random weights and random BatchNorm
statistics everywhere, NL γ non-zero and θ/φ/g peaked, the files saved as
MMAction2 publishes them, imported with the CLI, logits compared on the same
normalised clip to 1e-4 of the largest logit. 32 frames reach res3-res5 as
4 time steps; at 112² res4's 7×7 grid is odd, so floor pooling shows.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from gta_core import capture, load_checkpoint
from gta_core.__main__ import main as cli_main
from gta_core.models import VideoNet, model_config
from gta_core.models.resnet3d import I3D_INFLATE
from tests.helpers import (
    RELATIVE_TOLERANCE, assert_import_refused, assert_same_logits, logit_gap, one_thread, run_cli,  # noqa: F401
)
from tests.peers import mmaction as peer

pytestmark = pytest.mark.usefixtures("one_thread")

NL_FILE = "i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.pth"
# The published config text MMAction2 keeps in meta['cfg'] (abridged to what the importer reads).
I3D_NL_CONFIG = (
    "model = dict(type='Recognizer3D', backbone=dict(type='ResNet3d', depth=50, conv1_kernel=(5, 7, 7), "
    "conv1_stride_t=2, pool1_stride_t=2, inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)), "
    "non_local=((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0)), non_local_cfg=dict(sub_sample=True, "
    "use_scale=False, norm_cfg=dict(type='BN3d', requires_grad=True), mode='embedded_gaussian')), "
    "cls_head=dict(type='I3DHead', num_classes=400, in_channels=2048, spatial_type='avg'))\n"
    "train_pipeline = [dict(type='SampleFrames', clip_len=32, frame_interval=2, num_clips=1)]\n"
)
# A plain I3D with its own inflate pattern, so the importer must read the pattern off the kernels.
OTHER_INFLATE = ((0, 1, 0), (1, 1, 0, 0), (0, 0, 1, 1, 0, 1), (1, 0, 1))


def clip(frames: int, height: int, width: int, seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, frames, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def i3d_nl(tmp_path_factory):
    """MMAction2's I3D-R50-NL (400 classes), published with its config text and imported with the CLI."""
    folder = tmp_path_factory.mktemp("i3d_nl")
    model = peer.i3d_r50(num_classes=400, non_local=True)
    source = folder / NL_FILE
    peer.save_as_published(model, str(source), I3D_NL_CONFIG)
    done = run_cli("import", "mmaction2", str(source), "--out", str(folder / "ours"))
    assert done.returncode == 0, done.stderr
    return model, load_checkpoint(folder / "ours"), source


@pytest.mark.parametrize("size", [(112, 112), (96, 160)])
def test_mmaction2_i3d_r50_nl_logits(i3d_nl, size):
    model, checkpoint, _ = i3d_nl
    inputs = clip(32, *size, seed=size[1])
    with torch.no_grad():
        assert_same_logits(checkpoint.model(inputs), peer.logits_3d(model, inputs))


def test_i3d_import_reads_the_architecture_and_provenance(i3d_nl):
    _, checkpoint, source = i3d_nl
    config, arch = checkpoint.config, checkpoint.config.model_config()
    assert (arch.backbone, arch.depth, arch.block, arch.num_classes, arch.num_frames) == ("i3d", 50, "nl", 400, 32)
    assert arch.inflate == I3D_INFLATE
    assert dict(arch.block_positions) == {"res3": (1, 3), "res4": (1, 3, 5)}
    assert (arch.nl_scale, arch.nl_pool, arch.nl_pool_ceil, arch.nl_out_bias) == (False, "after", False, False)
    assert config.model_name == "MMAction2 I3D-R50-NL" and config.dataset["name"] == "Kinetics-400"
    provenance = config.provenance
    assert provenance["source_file"] == source.name and provenance["trained_frames"] == 32
    assert provenance["assumed"]["nl_mode"] == "embedded_gaussian (named in the config text and file name)"
    assert "read from the config text" in provenance["assumed"]["temporal_strides"]
    # The variant our registry's i3d_r50_nl names: same blocks, same NL maths.
    registered = model_config("i3d_r50_nl")
    assert arch.insert_after() == registered.insert_after()
    nl_fields = ("nl_scale", "nl_pool", "nl_pool_ceil", "nl_out_bias")
    assert [getattr(arch, f) for f in nl_fields] == [getattr(registered, f) for f in nl_fields]


def test_the_i3d_nl_variant_switches_matter(i3d_nl):
    """Our paper-default NL maths (scaled softmax, ceil pooling) would not reproduce MMAction2's I3D-NL."""
    model, checkpoint, _ = i3d_nl
    inputs = clip(32, 112, 112, seed=1, batch=1)
    theirs = peer.logits_3d(model, inputs)
    for change in ({"nl_scale": True}, {"nl_pool_ceil": True}):
        variant = VideoNet(dataclasses.replace(checkpoint.config.model_config(), **change))
        variant.load_state_dict(checkpoint.model.state_dict())
        with torch.no_grad():
            gap = logit_gap(variant.eval()(inputs), theirs)
        assert gap > 10 * RELATIVE_TOLERANCE, (change, gap)


def test_imported_i3d_nl_records_in_capture(i3d_nl):
    """NL rows of an imported I3D: 4 time steps of 8 frames, floor-pooled 7×7 -> 3×3 keys at 112²."""
    _, checkpoint, _ = i3d_nl
    result = capture(checkpoint.model, clip(32, 112, 112, seed=2, batch=1))
    assert sorted(result.records) == ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"]
    record = result.records["res4.3"]
    assert (record.num_steps, record.grid, record.key_grid) == (4, (7, 7), (3, 3))
    assert record.frame_spans == ((0, 8), (8, 16), (16, 24), (24, 32))
    assert record.row(t=3, y=6, x=0).sum().item() == pytest.approx(1.0, abs=1e-5)


def test_mmaction2_plain_i3d_with_its_own_inflate_pattern(tmp_path):
    """No NL, 174 classes, another inflate pattern, no config in the file: the pattern comes off the
    kernels, the strides are assumed (and said so), and --frames 16 runs the model on 16 frames."""
    model = peer.i3d_r50(num_classes=174, non_local=False, inflate=OTHER_INFLATE)
    source = tmp_path / "i3d_r50_8xb8-32x2x1-100e_sthv2-rgb.pth"
    torch.save({"state_dict": model.state_dict()}, source)
    # In-process (the reader is still a child): the NL fixture already runs the CLI as a command.
    assert cli_main(["import", "mmaction2", str(source), "--out", str(tmp_path / "ours"), "--frames", "16"]) == 0
    checkpoint = load_checkpoint(tmp_path / "ours")
    arch = checkpoint.config.model_config()
    assert (arch.block, arch.inflate, arch.num_frames, arch.num_classes) == ("none", OTHER_INFLATE, 16, 174)
    assert checkpoint.config.model_name == "MMAction2 I3D-R50"
    assert checkpoint.config.provenance["trained_frames"] == 32
    assert "assumed" in checkpoint.config.provenance["assumed"]["temporal_strides"]
    assert "nl_mode" not in checkpoint.config.provenance["assumed"]
    inputs = clip(16, 112, 112, seed=3)
    with torch.no_grad():
        assert_same_logits(checkpoint.model(inputs), peer.logits_3d(model, inputs))


# ---------------------------------------------------------------- what ours cannot represent

def skeleton(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same keys with 1-channel tensors (kernels keep their spatio-temporal shape), the stem whole:
    the refusals below come before any tensor is filled, so a small file serves them all."""
    out = {}
    for key, value in state.items():
        if key == "backbone.conv1.conv.weight":
            out[key] = value.clone()
        elif value.dim() == 5:
            out[key] = torch.zeros(1, 1, *value.shape[2:])
        else:
            out[key] = torch.zeros(1) if value.dim() else value.clone()      # num_batches_tracked stays 0-dim
    return out


def _edited(base: dict, **changes) -> dict:
    edited = dict(base)
    for key, value in changes.items():
        if value is None:
            edited = {k: v for k, v in edited.items() if not k.startswith(key)}
        else:
            edited[key] = value
    return edited


def refusals(base: dict) -> dict[str, tuple[str, dict, str | None, list[str]]]:
    """name -> (file name, state dict, config text or None, extra CLI arguments), each refused.

    Without a config text the file is written as .safetensors, which the importer reads in-process
    (no child, no meta): the refusals come from the keys, shapes and file name all the same, and
    the test stays fast. The two config-text cases go through the pickle reader.
    """
    stem, conv, k = "backbone.conv1.conv.weight", "backbone.layer1.0.conv{}.conv.weight", torch.zeros
    heavy = _edited(base, **{f"backbone.layer{s}.{i}.conv1.conv.weight": k(1, 1, 3, 1, 1)
                             for s, n in enumerate((3, 4, 6, 3), 1) for i in range(n)})
    return {
        "3×7×7 stem": ("i3d", _edited(base, **{stem: k(64, 3, 3, 7, 7)}), None, []),
        "3x3x3 inflate style": ("i3d", _edited(base, **{conv.format(1): k(1, 1, 1, 1, 1),
                                                      conv.format(2): k(1, 1, 3, 3, 3)}), None, []),
        "depth": ("i3d", _edited(base, **{"backbone.layer3.5.": None}), None, []),
        # gaussian has no θ/φ: a file named so whose blocks have them is contradictory (tests/test_nl_modes.py
        # imports the three modes MMAction2 ships).
        "gaussian name": ("i3d_imagenet-pretrained-r50-nl-gaussian_8xb8-32x2x1", base, None, []),
        "two modes named": ("i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1", base, I3D_NL_CONFIG, []),
        "concatenation config": ("i3d", base, I3D_NL_CONFIG.replace("embedded_gaussian", "concatenation"), []),
        "heavy config": ("i3d", base, I3D_NL_CONFIG.replace("conv1_stride_t=2", "conv1_stride_t=1"), []),
        "heavy, no config": ("i3d", heavy, None, []),
        "frames": ("i3d", base, None, ["--frames", "12"]),
    }


EXPECTED = {
    "3×7×7 stem": "the 3-D stem conv1 is (64, 3, 3, 7, 7); ours is I3D's (64, 3, 5, 7, 7)",
    "3x3x3 inflate style": "layer1.0.conv2 is 3×3×3 (MMAction2's inflate_style '3x3x3')",
    "depth": "(3, 4, 5, 3) blocks per stage; only I3D-R50 (3, 4, 6, 3) is supported",
    "gaussian name": "the file name names mode 'gaussian' (softmax(XXᵀ) on the raw features, without θ/φ), but the "
                     "non-local blocks have θ/φ",
    "two modes named": "the config text and file name name different NL modes: ['dot_product', 'embedded_gaussian']",
    "concatenation config": "non-local mode 'concatenation' (named in the config text) computes ReLU(w·[θ; φ])/N",
    "heavy config": "the config sets conv1_stride_t=1",
    "heavy, no config": "every residual block is inflated, as in MMAction2's i3d r50-heavy config",
    "frames": "--frames 12 is not divisible by 8",
}


def test_what_ours_cannot_represent_is_refused(i3d_nl, tmp_path, capsys):
    model, _, _ = i3d_nl
    base = skeleton(model.state_dict())
    for name, (stem, state, config_text, extra) in refusals(base).items():
        folder = tmp_path / name.replace(" ", "_").replace(",", "")
        folder.mkdir()
        if config_text is None:
            source = folder / f"{stem}.safetensors"
            save_file(state, source)
        else:
            source = folder / f"{stem}.pth"
            torch.save({"meta": {"cfg": config_text}, "state_dict": state}, source)
        assert_import_refused(["mmaction2", str(source), *extra], folder / "out", EXPECTED[name], capsys)


def test_mmaction2_i3d_nl_with_fewer_base_channels(tmp_path):
    """ResNet3d's base_channels (16 here) scales every stage: it imports as our width_multiplier (0.25)."""
    model = peer.i3d_r50(num_classes=400, non_local=True, base_channels=16)
    source = tmp_path / NL_FILE
    peer.save_as_published(model, str(source), I3D_NL_CONFIG)
    done = run_cli("import", "mmaction2", str(source), "--out", str(tmp_path / "ours"), "--frames", "16")
    assert done.returncode == 0, done.stderr
    checkpoint = load_checkpoint(tmp_path / "ours")
    assert checkpoint.config.model_config().width_multiplier == 0.25
    inputs = clip(16, 112, 112, seed=5)
    with torch.no_grad():
        assert_same_logits(checkpoint.model(inputs), peer.logits_3d(model, inputs))
