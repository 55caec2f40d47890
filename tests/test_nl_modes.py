"""The three NL modes MMAction2 ships (mmcv's NonLocal3d `mode`), against MMAction2's own models.

MMAction2 1.2.0 builds an I3D-R50-NL at 1/8 width (base_channels 8) with its
NonLocal3d blocks in each mode, random weights and BatchNorm statistics; the
file is saved as MMAction2 publishes it, imported with our CLI, and the
logits compared to 1e-4 of the largest. Dot-product rows are signed, and the
capture says so.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from gta_core import capture, load_checkpoint
from gta_core.layers import NonLocalBlock, Recorder
from gta_core.models import VideoNet
from gta_core.views import query_view
from gta_core.__main__ import main as cli_main
from tests.helpers import RELATIVE_TOLERANCE, assert_same_logits, one_thread  # noqa: F401
from tests.peers import mmaction as peer
from tests.test_importers_3d import I3D_NL_CONFIG

pytestmark = pytest.mark.usefixtures("one_thread")

FILE_NAMES = {
    "embedded_gaussian": "i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.pth",
    "gaussian": "i3d_imagenet-pretrained-r50-nl-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.pth",
    "dot_product": "i3d_imagenet-pretrained-r50-nl-dot-product_8xb8-32x2x1-100e_kinetics400-rgb.pth",
}


@pytest.fixture(scope="module", params=list(FILE_NAMES))
def imported(request, tmp_path_factory):
    mode = request.param
    folder = tmp_path_factory.mktemp(mode)
    model = peer.i3d_r50(num_classes=10, non_local=True, nl_mode=mode, base_channels=8, calibration_size=64)
    source = folder / FILE_NAMES[mode]
    peer.save_as_published(model, str(source), I3D_NL_CONFIG.replace("embedded_gaussian", mode))
    # Our CLI, in-process (a subprocess per mode would spend seconds importing torch).
    assert cli_main(["import", "mmaction2", str(source), "--out", str(folder / "ours"), "--frames", "16"]) == 0
    return mode, model, load_checkpoint(folder / "ours")


def test_each_nl_mode_gives_mmaction2s_logits(imported):
    mode, model, checkpoint = imported
    config = checkpoint.config.model_config()
    assert config.nl_mode == mode and not config.nl_scale
    assert checkpoint.config.provenance["assumed"]["nl_mode"].startswith(mode)
    inputs = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = peer.logits_3d(model, inputs)
        assert_same_logits(checkpoint.model(inputs), theirs)
        # The mode matters: the same weights in another mode give other logits ("gaussian" has no θ/φ to load).
        other = "dot_product" if mode == "embedded_gaussian" else "embedded_gaussian"
        if mode != "gaussian":
            variant = VideoNet(dataclasses.replace(config, nl_mode=other)).eval()
            variant.load_state_dict(checkpoint.model.state_dict())
            gap = 10 * RELATIVE_TOLERANCE * theirs.abs().max().item()
            assert not torch.allclose(variant(inputs), theirs, rtol=0, atol=gap), other


def test_the_capture_says_when_rows_are_not_distributions(imported):
    mode, _, checkpoint = imported
    record = capture(checkpoint.model, torch.randn(1, 3, 16, 64, 64)).records["res4.1"]
    row = record.row(t=1, y=2, x=3)
    assert (record.mode, record.is_distribution) == (mode, mode != "dot_product")
    view = query_view(record, 8, 0.5, 0.5)                       # what Query point and export draw
    assert view.is_distribution == (mode != "dot_product") and view.spacetime.shape[0] == record.num_steps
    if mode == "dot_product":
        assert row.min() < 0 and abs(row.sum().item() - 1) > 1e-3
    else:
        assert row.min() >= 0 and row.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_dot_product_rows_are_theta_phi_over_n_and_the_fused_path_agrees():
    """Hand-computed: weights = θφᵀ/S with S the number of keys; the unwatched path (q (kᵀv)/S) matches."""
    torch.manual_seed(0)
    block = NonLocalBlock(8, 2, pool="none", mode="dot_product").eval()
    torch.nn.init.ones_(block.norm.weight)
    x = torch.randn(2, 8, 3, 3)                           # (B·T, C, H, W): 2 frames of 3×3, S = 18 keys
    seen = []
    handle = block.softmax.register_forward_hook(lambda module, args, out: seen.append(out))
    watched = block(x)
    handle.remove()
    theta = torch.einsum("oc,tchw->thwo", block.query.weight[:, :, 0, 0], x) + block.query.bias
    phi = torch.einsum("oc,tchw->thwo", block.key.weight[:, :, 0, 0], x) + block.key.bias
    expected = theta.reshape(18, 4) @ phi.reshape(18, 4).T / 18
    torch.testing.assert_close(seen[0][0], expected)
    torch.testing.assert_close(block(x), watched, atol=1e-5, rtol=1e-5)
    # A lazy capture keeps q and k only (no log-sum-exp) and forms the same rows, one or a chunk at a time.
    recorder = Recorder(dense=False)
    block.watch(recorder)
    with torch.no_grad():
        recorded = block(x)
    recorder.eject()
    record = block.make_record(recorder, "nl", 1, ((0, 1), (1, 2)), False)
    assert record.rows.is_lazy and record.rows.logsumexp is None and not record.is_distribution
    torch.testing.assert_close(record.weights[0], expected)
    torch.testing.assert_close(record.rows.row(0, torch.tensor([17, 4, 9])), expected[[17, 4, 9]])
    torch.testing.assert_close(record.row(1, 2, 0), expected[9 + 6].reshape(2, 3, 3))
    torch.testing.assert_close(recorded, watched, atol=1e-5, rtol=1e-5)
