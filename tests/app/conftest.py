"""Fixtures for the app tests: random-weight demo checkpoints and tiny videos, in tmp dirs."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.fixtures import make_random_checkpoint, make_trained_checkpoint, write_video

ROOT = Path(__file__).resolve().parents[2]
LABEL = "Moving something from left to right"   # one of the temporal class names


@pytest.fixture(scope="session")
def checkpoint_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_random_checkpoint(root / "a_nl", "demo_r2d18_nl", seed=1)
    make_random_checkpoint(root / "b_dnl", "demo_r2d18_dnl", seed=2)
    make_random_checkpoint(root / "c_gta", "demo_r2d18_gta", seed=3)
    make_random_checkpoint(root / "d_gta_appearance", "demo_r2d18_gta", seed=4, variant="appearance")
    make_trained_checkpoint(root / "e_gta_trained", "demo_r2d18_gta", seed=5)
    make_trained_checkpoint(root / "f_gta_trained_appearance", "demo_r2d18_gta", seed=6, variant="appearance")
    # Seed-vs-seed numbers as `python -m gta_core matrices within-across --write` saves them.
    (root / "matrix_comparison.json").write_text(json.dumps(
        {"within": {"temporal": 0.8, "appearance": 0.7}, "across": 0.3, "groups": {}, "summary": "fixture"}))
    return root


@pytest.fixture(scope="session")
def video_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "moving.mp4", seed=0)
    (root / "moving.mp4.json").write_text(json.dumps({"label": LABEL}))
    write_video(root / "other.mp4", frames=12, seed=1)
    return root


@pytest.fixture
def app(monkeypatch, checkpoint_root, video_root):
    """A fresh AppTest session on the tmp checkpoints and videos (caches are per process, shared)."""
    monkeypatch.setenv("GTA_LENS_CHECKPOINTS", str(checkpoint_root))
    monkeypatch.setenv("GTA_LENS_ASSETS", str(video_root))
    monkeypatch.delenv("GTA_LENS_VIDEOS", raising=False)
    return AppTest.from_file(str(ROOT / "app/main.py"), default_timeout=60)


def choose(at: AppTest, names: list[str]) -> AppTest:
    """Pick checkpoints by folder name (the multiselect's labels start with it)."""
    widget = at.multiselect(key="checkpoints")
    widget.set_value([o for o in widget.options if o.split(" · ")[0] in names])
    return at.run()


def figures(at: AppTest) -> dict[str, dict]:
    """Plotly figures of the current page by element key (st.plotly_chart(key=...))."""
    out = {}
    for element in at.get("plotly_chart"):
        key = element.proto.id.rsplit("-", 1)[-1] if "-" in element.proto.id else element.proto.id
        out[key] = json.loads(element.proto.spec)
    return out


def array(value) -> np.ndarray:
    """A plotly JSON array (a list or a typed array {"dtype", "bdata", "shape"}) as numpy."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = [int(s) for s in str(value.get("shape", len(flat))).split(",")]
        return flat.reshape(shape)
    return np.asarray(value)


def traces(figure: dict, kind: str) -> list[dict]:
    return [trace for trace in figure["data"] if trace["type"] == kind]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def app_on(monkeypatch, checkpoint_roots: list, video_root):
    """An AppTest on these checkpoint folders and videos, torch on one thread (restored after)."""
    import os

    import torch

    monkeypatch.setenv("GTA_LENS_CHECKPOINTS", os.pathsep.join(str(r) for r in checkpoint_roots))
    monkeypatch.setenv("GTA_LENS_ASSETS", str(video_root))
    monkeypatch.delenv("GTA_LENS_VIDEOS", raising=False)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield AppTest.from_file(str(ROOT / "app/main.py"), default_timeout=240)
    torch.set_num_threads(previous)
