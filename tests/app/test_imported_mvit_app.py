"""AppTest: a torchvision MViTv2 (torchvision's `MViT` class with mvit_v2_s's switches and five small blocks,
tests/test_importers_mvit.py) imported as a user would, beside a demo GTA: its layers' pooled space-time
attention in Query point and Temporal attention, and the Order probe's sentence."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gta_core.importers import import_checkpoint
from tests.app.conftest import app_on, array, assert_clean, choose, figures, traces
from tests.peers import torchvision as peer
from tests.test_importers_mvit import SMALL_BLOCKS, SMALL_SIZE

MVIT = "torchvision_mvit"


@pytest.fixture(scope="module")
def imported_root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imported_mvit")
    source = folder / "mvit.pth"
    torch.save(peer.build_mvit(SMALL_BLOCKS, SMALL_SIZE).state_dict(), source)
    # The enum's 224 crop on a model whose tables are sized for 96²: they are resized, as torchvision's code does.
    import_checkpoint("torchvision", source, folder / "checkpoints" / MVIT, frames=8)
    return folder / "checkpoints"


@pytest.fixture
def imported_app(monkeypatch, imported_root, checkpoint_root, video_root):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield from app_on(monkeypatch, [imported_root, checkpoint_root], video_root)
    torch.set_num_threads(previous)


def test_imported_mvit_in_the_views(imported_app):
    at = imported_app.run()
    assert any(label.startswith(f"{MVIT} · torchvision mvit (5 blocks)") for label in at.multiselect(key="checkpoints").options)
    at = choose(at, [MVIT, "c_gta"])
    assert_clean(at)

    at.switch_page("views/query.py").run()
    assert_clean(at)
    assert at.selectbox(key="q_block").options[:5] == [f"blocks.{i}" for i in range(5)]
    at.selectbox(key="q_block").set_value("blocks.1").run()
    assert_clean(at)
    captions = [c.value for c in at.caption]
    assert any("blocks.1 (MViTv2, pooled space-time attention): 4 time steps of 2 frames each; queries on a "
               "28×28 grid (pooled from 56×56), keys pooled to 14×14" in c for c in captions), captions
    assert any(c.startswith("Query dependence of this clip: MViT: JS") for c in captions)
    # One (h, w) map of the patch keys per step; with the CLS key's share they make a distribution.
    maps = [array(h["z"]) for h in traces(figures(at)["nl_0"], "heatmap")]
    assert len(maps) == 4 and all(m.shape == (14, 14) for m in maps)
    assert 0.5 < sum(m.sum() for m in maps) <= 1.0 + 1e-4

    at.switch_page("views/temporal.py").run()
    assert_clean(at)
    at.selectbox(key="q_block").set_value("blocks.1").run()
    assert_clean(at)
    matrix = array(traces(figures(at)["matrix_0_0"], "heatmap")[0]["z"])
    assert matrix.shape == (4, 4) and (matrix.sum(axis=1) <= 1.0 + 1e-4).all() and matrix.sum() > 2.0

    at.switch_page("views/order_probe.py").run()
    assert_clean(at)
    sentences = [c.value for c in at.caption if "by construction" in c.value]
    assert sentences[0].startswith("Order-sensitive") and "relative time positions" in sentences[0]
