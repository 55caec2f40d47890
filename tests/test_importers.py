"""Importers against the peer's own code: MMAction2 1.2.0 builds the models, we import its files.

Every comparison is logit for logit on the same normalised clip, to 1e-4 of
the largest logit. Random weights and random BatchNorm statistics everywhere
(non-local γ included), so a wrong rename, a transposed kernel or a wrong NL
variant shows up.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from gta_core import capture, load_checkpoint
from gta_core.importers import load_imagenet_backbone
from gta_core.models import VideoNet, create_model
from tests.helpers import RELATIVE_TOLERANCE, assert_import_refused, assert_same_logits, run_cli
from tests.peers import mmaction as peer

# The published config text MMAction2 keeps in meta['cfg'] (abridged to what the importer reads).
TSM_NL_CONFIG = (
    "model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', depth=50, num_segments=8, shift_div=8, "
    "non_local_cfg=dict(sub_sample=True, use_scale=False, mode='embedded_gaussian')))\n"
    "dataset_type = 'VideoDataset'\ndata_root = 'data/kinetics400/videos_train'\n"
)


@pytest.fixture(scope="module")
def tsm_nl(tmp_path_factory):
    """MMAction2's TSM-R50-NL (400 classes, 8 segments), published and imported with the CLI."""
    folder = tmp_path_factory.mktemp("tsm_nl")
    model = peer.tsm_r50(num_classes=400, frames=8, non_local=True)
    source = folder / "tsm_imagenet-pretrained-r50-nl-embedded-gaussian_8xb16-1x1x8-50e_kinetics400-rgb.pth"
    peer.save_as_published(model, str(source), TSM_NL_CONFIG)
    labels = folder / "label_map_k400.txt"
    labels.write_text("".join(f"action {i}\n" for i in range(400)))
    done = run_cli("import", "mmaction2", str(source), "--out", str(folder / "ours"), "--labels", str(labels))
    assert done.returncode == 0, done.stderr
    return model, folder / "ours", source


@pytest.mark.parametrize("size", [224, 112])
def test_mmaction2_tsm_r50_nl_logits(tsm_nl, size):
    model, ours_folder, _ = tsm_nl
    ours = load_checkpoint(ours_folder).model
    clip = torch.randn(2, 3, 8, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        assert_same_logits(ours(clip), peer.logits(model, clip))


def test_mmaction2_import_reads_the_architecture_and_provenance(tsm_nl):
    _, folder, source = tsm_nl
    checkpoint = load_checkpoint(folder)
    config, arch = checkpoint.config, checkpoint.config.model_config()
    assert (arch.depth, arch.tsm, arch.block, arch.num_classes, arch.num_frames) == (50, True, "nl", 400, 8)
    assert dict(arch.block_positions) == {"res3": (0, 2), "res4": (0, 2, 4)}
    assert (arch.nl_scale, arch.nl_pool, arch.nl_pool_ceil, arch.nl_out_bias) == (False, "after", False, False)
    assert config.model_name == "MMAction2 TSM-R50-NL" and config.dataset["name"] == "Kinetics-400"
    assert config.class_names[:2] == ["action 0", "action 1"]
    provenance = config.provenance
    assert provenance["source_format"] == "mmaction2" and provenance["source_file"] == source.name
    assert re.fullmatch(r"[0-9a-f]{64}", provenance["source_sha256"])
    # The meta holds mmengine and numpy objects: weights_only refuses, the allow-list reader takes it.
    assert provenance["reader"] == "allow-list unpickler"


def test_the_nl_variant_switches_matter(tsm_nl):
    """Our paper-default NL maths (scaled softmax, ceil pooling) would not reproduce MMAction2."""
    model, folder, _ = tsm_nl
    checkpoint = load_checkpoint(folder)
    clip = torch.randn(1, 3, 8, 112, 112, generator=torch.Generator().manual_seed(1))
    theirs = peer.logits(model, clip)
    for change in ({"nl_scale": True}, {"nl_pool_ceil": True}):
        variant = VideoNet(dataclasses.replace(checkpoint.config.model_config(), **change))
        variant.load_state_dict(checkpoint.model.state_dict())
        with torch.no_grad():
            gap = (variant.eval()(clip) - theirs).abs().max().item()
        assert gap > 10 * RELATIVE_TOLERANCE * theirs.abs().max().item(), change


def test_imported_nl_records_in_capture(tsm_nl):
    """NL query rows of an imported model: floor-pooled 7×7 -> 3×3 keys at 112², rows are distributions."""
    _, folder, _ = tsm_nl
    model = load_checkpoint(folder).model
    result = capture(model, torch.randn(1, 3, 8, 112, 112))
    assert sorted(result.records) == ["res3.0", "res3.2", "res4.0", "res4.2", "res4.4"]
    record = result.records["res4.2"]
    assert (record.grid, record.key_grid) == ((7, 7), (3, 3))
    row = record.row(t=3, y=6, x=0)
    assert row.shape == (8, 3, 3)
    assert row.sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.fixture(scope="module")
def plain_tsm(tmp_path_factory):
    """MMAction2's plain TSM-R50 (174 classes, 4 segments), published and imported with the CLI."""
    folder = tmp_path_factory.mktemp("tsm")
    model = peer.tsm_r50(num_classes=174, frames=4, non_local=False)
    source = folder / "tsm_imagenet-pretrained-r50_8xb16-1x1x4-100e_sthv2-rgb.pth"
    peer.save_as_published(model, str(source), "model = dict(backbone=dict(num_segments=4))  # sthv2")
    done = run_cli("import", "mmaction2", str(source), "--out", str(folder / "ours"))
    assert done.returncode == 0, done.stderr
    return model, load_checkpoint(folder / "ours")


@pytest.mark.parametrize("size", [224, 160])
def test_mmaction2_plain_tsm_r50_logits(plain_tsm, size):
    model, checkpoint = plain_tsm
    arch = checkpoint.config.model_config()
    assert (arch.block, arch.tsm, arch.num_frames, arch.num_classes) == ("none", True, 4, 174)
    assert checkpoint.config.dataset["name"] == "Something-Something v2"
    assert checkpoint.config.class_names[-1] == "class_173"
    clip = torch.randn(2, 3, 4, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        assert_same_logits(checkpoint.model(clip), peer.logits(model, clip))


# ---------------------------------------------------------------- the official TSM layout

def mmaction2_to_tsm_repository(state: dict) -> OrderedDict:
    """MMAction2 TSM-R50-NL names -> the TSM repository's, following its ops/models.py (TSN: `base_model`,
    `new_fc`, saved from DataParallel as `module.`), ops/temporal_shift.py (`conv1.net`) and
    ops/non_local.py (`NL3DWrapper.block`/`.nl`; `theta`, `phi.0`, `g.0`, `W.0` with bias, `W.1`)."""
    renames = [
        (r"^backbone\.conv1\.conv\.", "base_model.conv1."),
        (r"^backbone\.conv1\.bn\.", "base_model.bn1."),
        (r"^backbone\.", "base_model."),
        (r"\.conv(\d)\.conv\.net\.", r".conv\1.net."),
        (r"\.conv(\d)\.conv\.", r".conv\1."),
        (r"\.conv(\d)\.bn\.", r".bn\1."),
        (r"\.downsample\.conv\.", ".downsample.0."),
        (r"\.downsample\.bn\.", ".downsample.1."),
        (r"\.non_local_block\.(theta|phi\.0|g\.0)\.conv\.", r".nl.\1."),
        (r"\.non_local_block\.conv_out\.conv\.", ".nl.W.0."),
        (r"\.non_local_block\.conv_out\.bn\.", ".nl.W.1."),
        (r"^cls_head\.fc_cls\.", "new_fc."),
    ]
    out = OrderedDict()
    for key, value in state.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        out["module." + key] = value
    for key in [k for k in out if k.endswith(".nl.W.0.weight")]:  # the repository's W conv has a bias
        out[key.replace(".weight", ".bias")] = torch.zeros(out[key].shape[0])
    return out


def test_tsm_repository_layout_logits(tsm_nl, tmp_path):
    model, _, _ = tsm_nl
    source = tmp_path / "TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e100_dense_nl.pth"
    state = mmaction2_to_tsm_repository(model.state_dict())
    assert "module.base_model.layer2.0.nl.g.0.weight" in state and "module.new_fc.weight" in state
    assert "module.base_model.layer1.0.conv1.net.weight" in state
    torch.save({"epoch": 100, "arch": "resnet50", "state_dict": state, "best_prec1": 74.1}, source)
    done = run_cli("import", "tsm", str(source), "--out", str(tmp_path / "ours"))
    assert done.returncode == 0, done.stderr
    checkpoint = load_checkpoint(tmp_path / "ours")
    assert checkpoint.config.model_name == "TSM TSM-R50-NL"
    assert checkpoint.config.provenance["reader"] == "torch.load(weights_only=True)"
    assert checkpoint.config.model_config().nl_out_bias is True
    clip = torch.randn(1, 3, 8, 112, 112, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert_same_logits(checkpoint.model(clip), peer.logits(model, clip))


# ---------------------------------------------------------------- ImageNet initialisation

def torchvision_layout(state: dict) -> OrderedDict:
    """MMAction2 ResNet names -> torchvision's (the inverse of MMAction2's own torchvision loader)."""
    out = OrderedDict()
    for key, value in state.items():
        key = re.sub(r"^conv1\.conv\.", "conv1.", key)
        key = re.sub(r"^conv1\.bn\.", "bn1.", key)
        key = re.sub(r"\.conv(\d)\.conv\.", r".conv\1.", key)
        key = re.sub(r"\.conv(\d)\.bn\.", r".bn\1.", key)
        key = key.replace(".downsample.conv.", ".downsample.0.").replace(".downsample.bn.", ".downsample.1.")
        out[key] = torch.randn(value.shape) * 0.05 if value.is_floating_point() else value
    for key in [k for k in out if k.endswith("running_var")]:
        out[key] = out[key].abs() + 0.5
    out["fc.weight"], out["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    return out


def test_imagenet_init_matches_a_torchvision_resnet50_loaded_by_mmaction2(tmp_path):
    reference = peer.registry().build(dict(type="ResNet", depth=50, pretrained=None))
    imagenet = torchvision_layout(reference.state_dict())
    source = tmp_path / "resnet50_torchvision.pth"
    torch.save(imagenet, source)
    oracle = peer.resnet50_torchvision_pretrained(str(source))
    ours = create_model("r2d50_gta", num_classes=10).eval()
    report = load_imagenet_backbone(ours, source)
    assert report["dropped"] == ["fc.bias", "fc.weight"]
    assert report["loaded"] == len(imagenet) - 2
    assert all(k.startswith("head.") or ".attention." in k for k in report["kept_at_init"])
    frames = torch.randn(8, 3, 96, 128, generator=torch.Generator().manual_seed(0))  # one clip of T = 8
    with torch.no_grad():
        # Fresh GTA blocks are the identity, so the per-frame features are the ResNet's.
        theirs, mine = oracle(frames), ours.backbone(frames)
    assert (mine - theirs).abs().max().item() <= 1e-5 * theirs.abs().max().item()


def test_train_init_imagenet_reports_and_refuses_a_wrong_depth(tmp_path):
    reference = peer.registry().build(dict(type="ResNet", depth=50, pretrained=None))
    source = tmp_path / "r50.pth"
    torch.save(torchvision_layout(reference.state_dict()), source)
    with pytest.raises(Exception, match="shape mismatches|not filled"):
        load_imagenet_backbone(create_model("r2d18"), source)


# ---------------------------------------------------------------- bad sources

MARKER = Path("/tmp/gta-lens-import-pwned")


class RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def _bad_sources(tmp_path: Path, good: Path) -> dict[str, Path]:
    sources = {}
    sources["not a pickle"] = tmp_path / "notes.pth"
    sources["not a pickle"].write_text("these are not weights\n")
    sources["code-running pickle"] = tmp_path / "evil.pth"
    sources["code-running pickle"].write_bytes(pickle.dumps({"state_dict": {"w": RunsCode()}}, protocol=2))
    sources["code-running torch.save"] = tmp_path / "evil_zip.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}, "meta": RunsCode()}, sources["code-running torch.save"])
    sources["truncated"] = tmp_path / "truncated.pth"
    sources["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return sources


def test_bad_sources_fail_cleanly(tsm_nl, tmp_path, capsys):
    model, _, good = tsm_nl
    MARKER.unlink(missing_ok=True)
    sources = _bad_sources(tmp_path, good)
    state = model.state_dict()
    missing = {k: v for k, v in state.items() if k != "backbone.layer4.2.conv2.bn.running_var"}
    extra = {**state, "cls_head.extra.weight": torch.zeros(3)}
    # A 3-D stem I3D does not have (3×7×7, as ResNet3d's default conv1_kernel) on a 2-D ResNet.
    other_architecture = {"backbone.conv1.conv.weight": torch.zeros(64, 3, 3, 7, 7), **{
        k: v for k, v in state.items() if k != "backbone.conv1.conv.weight"}}
    for name, payload in (("missing keys", missing), ("extra keys", extra), ("3-D backbone", other_architecture)):
        sources[name] = tmp_path / f"{name.replace(' ', '_')}.pth"
        torch.save({"state_dict": payload}, sources[name])
    expected = {
        "not a pickle": "not a PyTorch checkpoint",
        "code-running pickle": "refused: the pickle asks for posix.system",
        "code-running torch.save": "refused: the pickle asks for posix.system",
        "truncated": "not a readable PyTorch checkpoint",
        "missing keys": "not filled: backbone.res5.2.residual.bn2.running_var",
        "extra keys": "match no rule: cls_head.extra.weight",
        "3-D backbone": "the 3-D stem conv1 is (64, 3, 3, 7, 7)",
    }
    for name, source in sources.items():
        assert_import_refused(["mmaction2", str(source)], tmp_path / f"out_{len(name)}", expected[name], capsys)
    assert not MARKER.exists(), "a pickle ran code"


def test_existing_out_is_refused_without_force(tsm_nl, tmp_path):
    _, _, source = tsm_nl
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    done = run_cli("import", "mmaction2", str(source), "--out", str(out))
    assert done.returncode == 2 and "already exists; pass --force" in done.stderr
    assert (out / "keep.txt").read_text() == "mine"
    done = run_cli("import", "mmaction2", str(source), "--out", str(out), "--force", "--frames", "4")
    assert done.returncode == 0, done.stderr
    assert not (out / "keep.txt").exists()
    assert load_checkpoint(out).config.num_frames == 4


def test_model_card_lists_imported_checkpoints(tsm_nl):
    from gta_core.evaluate import model_card_markdown, model_card_rows

    _, folder, _ = tsm_nl
    (row,) = model_card_rows([folder])
    assert row["dataset"] == "Kinetics-400 (imported from mmaction2)" and row["device"] == "imported"
    assert row["params_check"] and row["input"] == "8×224²"
    # ResNet-50 (23.5 M without fc) + 5 NL blocks (2 at 512, 3 at 1024 channels) + a 400-way fc.
    nl = 2 * (4 * 512 * 256 + 3 * 256 + 2 * 512) + 3 * (4 * 1024 * 512 + 3 * 512 + 2 * 1024)
    assert row["params_m"] * 1e6 == 23_508_032 + nl + 2048 * 400 + 400
    assert "import mmaction2" in model_card_markdown([row])
