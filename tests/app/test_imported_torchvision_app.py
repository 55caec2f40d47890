"""AppTest: torchvision's MC3-18 and S3D, imported as a user would, beside a demo GTA.

torchvision 0.28.0's own models (tests/peers/torchvision.py) with random
weights and BatchNorm statistics, saved as torchvision publishes them and
imported through `import_checkpoint` (S3D at 16 frames, so the CPU run stays
short). They have no attention blocks: the app shows their predictions and the
Order probe, whose sentence must say they see frame order (Grad-CAM and
occlusion on them: tests/test_importers_torchvision.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gta_core.importers import import_checkpoint
from tests.app.conftest import app_on, array, assert_clean, choose, figures, traces
from tests.peers import torchvision as peer

MC3, S3D = "torchvision_mc3", "torchvision_s3d"


@pytest.fixture(scope="module")
def imported_root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imported_torchvision")
    for name, frames, out in (("mc3_18", None, MC3), ("s3d", 16, S3D)):
        source = folder / f"{name}.pth"
        torch.save(peer.build(name).state_dict(), source)
        import_checkpoint("torchvision", source, folder / "checkpoints" / out, frames=frames)
    return folder / "checkpoints"


@pytest.fixture
def imported_app(monkeypatch, imported_root, checkpoint_root, video_root):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)          # on 2 shared cores a second intra-op thread spin-waits
    yield from app_on(monkeypatch, [imported_root, checkpoint_root], video_root)
    torch.set_num_threads(previous)


def test_imported_torchvision_models_predict_and_probe_order(imported_app):
    at = imported_app.run()
    labels = at.multiselect(key="checkpoints").options
    assert any(label.startswith(f"{MC3} · torchvision mc3_18") for label in labels)
    assert any(label.startswith(f"{S3D} · torchvision s3d") for label in labels)
    at = choose(at, [MC3, S3D, "c_gta"])
    assert_clean(at)
    assert len(traces(figures(at)["topk_1"], "bar")) == 1

    at.switch_page("views/order_probe.py").run()
    assert_clean(at)
    sentences = [c.value for c in at.caption if "by construction" in c.value]
    assert len(sentences) == 3 and all(s.startswith("Order-sensitive") for s in sentences)
    bars = traces(figures(at)["order_all"], "bar")
    p = np.stack([array(b["y"]) for b in bars])                           # (orders, models)
    assert p.shape == (3, 3) and (np.abs(p[1:] - p[:1]).max(axis=0) > 0).all()

