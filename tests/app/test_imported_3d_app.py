"""AppTest: an imported MMAction2 SlowFast-R50 and an imported HF TimeSformer beside a demo GTA.

Both are small (SlowFast: Slow pathway 16 channels wide, 32 frames; TimeSformer:
2 layers, 4 frames of 32², 8² patches) with random weights, imported through
the importers as a user would, and opened in the views that apply.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gta_core.importers import import_checkpoint
from tests.app.conftest import app_on, array, assert_clean, choose, figures, traces
from tests.peers import mmaction as peer
from tests.test_importers_timesformer import FRAMES as TSF_FRAMES, hf_timesformer

SLOWFAST, TIMESFORMER = "mmaction2_slowfast", "hf_timesformer"


@pytest.fixture(scope="module")
def imported_root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imported_3d")
    source = folder / "slowfast_r50_8xb8-8x8x1-256e_kinetics400-rgb.pth"
    model = peer.slowfast_r50(num_classes=400, alpha=4, fusion_kernel=7, base_channels=16)
    peer.save_as_published(model, str(source), "model = dict(backbone=dict(resample_rate=4, speed_ratio=4))")
    import_checkpoint("mmaction2", source, folder / "checkpoints" / SLOWFAST)
    hf_timesformer().save_pretrained(folder / "hf")
    import_checkpoint("hf-timesformer", folder / "hf", folder / "checkpoints" / TIMESFORMER)
    return folder / "checkpoints"


@pytest.fixture
def imported_app(monkeypatch, imported_root, checkpoint_root, video_root):
    yield from app_on(monkeypatch, [imported_root, checkpoint_root], video_root)


def test_imported_slowfast_and_timesformer_in_the_views(imported_app):
    at = imported_app.run()
    labels = at.multiselect(key="checkpoints").options
    assert f"{SLOWFAST} · MMAction2 SlowFast-R50 · Kinetics-400" in labels
    assert any(label.startswith(f"{TIMESFORMER} · HF transformers TimeSformer") for label in labels)
    at = choose(at, [SLOWFAST, TIMESFORMER, "c_gta"])
    assert_clean(at)
    assert len(traces(figures(at)["topk_0"], "bar")) == 1

    at.switch_page("views/temporal.py").run()
    assert_clean(at)
    # Block "layer.0" (TimeSformer's first, the first block listed): its TA averaged over patches, rows sum to 1.
    assert at.selectbox(key="q_block").value == "layer.0"
    ta = array(traces(figures(at)["matrix_0_0"], "heatmap")[0]["z"])
    assert ta.shape == (TSF_FRAMES, TSF_FRAMES) and np.allclose(ta.sum(axis=1), 1.0, atol=1e-4)
    # A ResNet block: GTA's M̂ beside TimeSformer's last layer (the screenshot of docs/importing-more.md).
    at.selectbox(key="q_block").set_value("res3.1").run()
    assert_clean(at)
    assert any("its last layer layer.1 is shown beside res3.1" in c.value for c in at.caption)
    assert any("layer.1 (TimeSformer, divided space-time attention): 4 time steps" in c.value for c in at.caption)
    shown = figures(at)
    ta = array(traces(shown["matrix_0_0"], "heatmap")[0]["z"])
    assert ta.shape == (TSF_FRAMES, TSF_FRAMES) and np.allclose(ta.sum(axis=1), 1.0, atol=1e-4)
    assert "matrix_2_0" in shown                      # c_gta's mean |M̂_P|

    at.switch_page("views/query.py").run()
    assert_clean(at)
