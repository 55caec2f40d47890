"""AppTest: the Dataset view on SlowFast DNL and TAPE beside a 2-D DNL (issue 21).

The Slow pathway's blocks have T' = T/α time steps (16 frames: 4), the R2D's
8 frames; each model's per-class TA matrices are drawn at its own T'.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gta_core.data import synth
from tests.app.conftest import app_on, array, assert_clean, choose, figures, traces
from tests.app.fixtures import make_random_checkpoint

MODELS = ["a_dnl", "sf_dnl", "sf_tape"]


@pytest.fixture(scope="module")
def root_3d(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints_dataset_3d")
    make_random_checkpoint(root / "a_dnl", "demo_r2d18_dnl", seed=2)
    make_random_checkpoint(root / "sf_dnl", "demo_slowfast_r50_dnl", seed=8, num_frames=16)
    make_random_checkpoint(root / "sf_tape", "demo_slowfast_r50_tape", seed=9, num_frames=16)
    return root


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("dataset_3d") / "tiny_temporal", seed=5, videos_per_class=2,
                          size="32x40", frames=8, workers=1)


@pytest.fixture
def dataset_3d(monkeypatch, root_3d, video_root, dataset_root, tmp_path):
    monkeypatch.setenv("GTA_LENS_DATA", str(dataset_root))
    monkeypatch.setenv("GTA_LENS_CACHE", str(tmp_path / "cache"))
    yield from app_on(monkeypatch, [root_3d], video_root)


def test_dataset_view_on_slowfast_beside_r2d(dataset_3d):
    at = choose(dataset_3d.run(), MODELS)
    at.switch_page("views/dataset.py").run()
    assert_clean(at)
    options = at.selectbox(key="dataset_stats").options
    assert {o.split(" · ")[0] for o in options} == set(MODELS)
    assert all(o.split(" · ")[1].startswith("slow.") for o in options if o.startswith("sf_")), options
    for label in ("a_dnl · res3.1", "sf_dnl · slow.res3.1", "sf_tape · slow.res4.3"):
        steps = 4 if label.startswith("sf_") else 8
        at.selectbox(key="dataset_stats").set_value(label).run()
        assert_clean(at)
        figure = figures(at)["dataset_class_matrices"]
        grid = traces(figure, "heatmap")
        assert len(grid) == 15 and all(array(h["z"]).shape == (steps, steps) for h in grid), label
        unit = "step" if label.startswith("sf_") else "frame"           # a Slow step is α = 4 frames
        assert figure["layout"]["yaxis"]["title"]["text"] == f"query {unit}", label
        assert all(np.allclose(array(h["z"]).sum(axis=1), 1.0, atol=1e-4) for h in grid)
