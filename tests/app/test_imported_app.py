"""AppTest: an imported MMAction2 TSM-R50-NL (8×224², 400 classes) beside a demo GTA, in every view that applies."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gta_core.importers import import_checkpoint
from tests.app.conftest import app_on, array, assert_clean, choose, figures, traces
from tests.peers import mmaction as peer

T = 8
NAME = "mmaction2_tsm_r50_nl"


@pytest.fixture(scope="module")
def imported_root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imported")
    source = folder / "tsm_imagenet-pretrained-r50-nl-embedded-gaussian_8xb16-1x1x8-50e_kinetics400-rgb.pth"
    peer.save_as_published(peer.tsm_r50(num_classes=400, frames=T, non_local=True), str(source), "num_segments=8")
    import_checkpoint("mmaction2", source, folder / "checkpoints" / NAME)
    source.unlink()
    return folder / "checkpoints"


@pytest.fixture
def imported_app(monkeypatch, imported_root, checkpoint_root, video_root):
    yield from app_on(monkeypatch, [imported_root, checkpoint_root], video_root)


def test_imported_nl_model_in_the_views(imported_app):
    at = imported_app.run()
    labels = at.multiselect(key="checkpoints").options
    assert f"{NAME} · MMAction2 TSM-R50-NL · Kinetics-400" in labels
    at = choose(at, [NAME, "c_gta"])
    assert_clean(at)
    assert len(traces(figures(at)["topk_0"], "bar")) == 1

    at.switch_page("views/query.py").run()
    assert_clean(at)
    nl = figures(at)["nl_0"]                 # res3.0 at 224²: 28×28 queries, floor-pooled 14×14 keys
    heat = traces(nl, "heatmap")
    assert len(heat) == T and all(array(h["z"]).shape == (14, 14) for h in heat)
    assert np.isclose(sum(array(h["z"]).sum() for h in heat), 1.0, atol=1e-4)
    at.selectbox(key="q_block").set_value("res4.4").run()
    assert_clean(at)
    assert array(traces(figures(at)["nl_0"], "heatmap")[0]["z"]).shape == (7, 7)

    at.switch_page("views/order_probe.py").run()
    assert_clean(at)
    assert "order_all" in figures(at)

    at.switch_page("views/knockout.py").run()
    assert_clean(at)
    picker = at.selectbox(key="knockout_pick_0")
    assert {"res3.0 block", "res3.2 block", "res4.0 block", "res4.2 block", "res4.4 block"} <= set(picker.options)
