"""A query's footprint in the input (effective receptive field by gradient), against hand-computed spans."""
from __future__ import annotations

import pytest
import torch

from gta_core.footprint import footprint
from gta_core.models import VideoNet, VideoNetConfig, create_model
from tests.helpers import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def test_res4_query_on_i3d_covers_the_frames_its_kernels_and_strides_imply():
    """I3D-R50 (i3d_r50.py), query at step t of res4.1's input, its temporal receptive field by hand.

    An output interval [a, b] of a layer with temporal kernel k, stride s, padding p reads [a·s − p, b·s − p + k − 1].
    Backwards from res4.1: res4.0 inflated (3×1×1, ±1) -> [t−1, t+1]; res3's two inflated blocks (±2) -> [t−3, t+3];
    pool2 (k 2, s 2) -> [2t−6, 2t+7]; res2's three inflated blocks (±3) -> [2t−9, 2t+10]; pool1 (k 1, s 2) ->
    [4t−18, 4t+20]; conv1 (k 5, s 2, p 2) -> [8t−38, 8t+42]. At t = 6 of 96 frames: frames 10..90, while the
    step nominally stands for frames 48..55.
    """
    torch.manual_seed(0)
    config = VideoNetConfig(backbone="i3d", width_multiplier=0.125, num_frames=96, num_classes=3, block="nl",
                            block_positions=(("res4", (1,)),))
    model = VideoNet(config).eval()
    clip = torch.randn(1, 3, 96, 32, 32, generator=torch.Generator().manual_seed(1))
    found = footprint(model, clip, "res4.1", 6, 1, 0)
    assert found.frames == (8 * 6 - 38, 8 * 6 + 42 + 1)
    assert found.nominal_frames == (48, 56) and found.grid == (2, 2)
    assert found.frame_mass.sum() == pytest.approx(1.0)
    # At the clip's start the field is cut by the first frame: t = 1 -> frames 0..50.
    assert footprint(model, clip, "res4.1", 1, 0, 1).frames == (0, 8 + 42 + 1)


def test_r2d_query_reads_its_own_frame_only_and_a_local_patch():
    """R2D (no TSM) runs frame by frame: the footprint is the query's frame, and its pixels are a patch."""
    model = create_model("demo_r2d18_nl", num_classes=3, width_multiplier=0.125, num_frames=4).eval()
    clip = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(2))
    found = footprint(model, clip, "res3.1", 2, 0, 0)
    assert found.frames == (2, 3) and found.nominal_frames == (2, 3)
    rows = found.weights[2].sum(axis=1).nonzero()[0]
    assert rows.min() == 0 and rows.max() < 64 - 8          # a corner query does not reach the far edge
    with pytest.raises(ValueError, match="outside res3.1's 4×8×8 grid"):
        footprint(model, clip, "res3.1", 2, 8, 0)
