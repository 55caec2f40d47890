"""AppTest: a SlowFast-GTA and an imported MMAction2 I3D-NL beside a 2D GTA in every view, time steps mapped to frames.

SlowFast (32 frames): its Slow pathway has 8 steps of 4 frames; I3D (16 frames): res3/res4 have 2 steps
of 8 frames; the 2D demo GTA: 8 frames. The frame slider runs over the longest clip (32 frames).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import app_on, array, assert_clean, choose, figures, traces
from tests.app.fixtures import make_random_checkpoint
from tests.helpers import run_cli
from tests.peers import mmaction as peer

MODELS = ["i3d_nl", "sf_gta", "c_gta"]     # the app's column order (the checkpoint list's)


@pytest.fixture(scope="module")
def root_3d(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints_3d")
    make_random_checkpoint(root / "sf_gta", "demo_slowfast_r50_gta", seed=7)
    # MMAction2's own I3D-R50-NL (a quarter of the width: base_channels 16), saved as it publishes and
    # imported through the CLI with 16 frames.
    source = root / "i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.pth"
    peer.save_as_published(peer.i3d_r50(num_classes=400, non_local=True, base_channels=16), str(source), "")
    done = run_cli("import", "mmaction2", str(source), "--out", str(root / "i3d_nl"), "--frames", "16")
    assert done.returncode == 0, done.stderr
    source.unlink()
    return root


@pytest.fixture
def app_3d(monkeypatch, root_3d, checkpoint_root, video_root):
    yield from app_on(monkeypatch, [root_3d, checkpoint_root], video_root)


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_query_and_temporal_views_map_time_steps_to_frames(app_3d):
    at = choose(app_3d.run(), MODELS)
    assert_clean(at)
    at.switch_page("views/query.py").run()
    # The blocks are listed once per stage.index: "res3.1" is also SlowFast's "slow.res3.1".
    assert at.selectbox(key="q_block").options == ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"]
    at.selectbox(key="q_block").set_value("res3.1").run()
    at.slider(key="q_t").set_value(13).run()    # frame 13 of the 32-frame timeline
    assert_clean(at)
    text = captions(at)
    # SlowFast: frame 13 is Slow step 3 (frames 12-15), video frame 6 of the 16-frame file (32 TSN segments
    # repeat each frame). Each model reads the same video frame through its own sampling: the I3D's dense
    # 16×2 clip (0, 2, ..., 14, then round again) at its frame 3, step 0 (frames 0-7); the 8-frame R2D's
    # TSN centres (1, 3, 5, 7, ...) at frame 2 (video frame 5; 5 and 7 are as near, the earlier wins).
    assert any("slow.res3.1, slow pathway, step 3 = frames 12–15" in c for c in text), text
    assert any("res3.1, step 0 = frames 0–7" in c for c in text), text
    assert any("GTA · res3.1, frame 2" in c for c in text), text
    shown = figures(at)
    sf_row = traces(shown["global_1"], "bar")[0]
    assert len(array(sf_row["y"])) == 8                      # M̂ rows over the 8 Slow steps
    assert shown["global_1"]["layout"]["xaxis"]["ticktext"][3] == "3: f12–15"
    assert "slow pathway, step 3" in shown["spatial_1"]["layout"]["annotations"][0]["text"]
    nl = traces(shown["nl_0"], "heatmap")                    # I3D res3 at 224²: 28×28 queries, floor-pooled 14×14 keys
    assert len(nl) == 2 and all(array(h["z"]).shape == (14, 14) for h in nl)
    assert np.isclose(sum(array(h["z"]).sum() for h in nl), 1.0, atol=1e-4)
    assert len(array(traces(shown["global_2"], "bar")[0]["y"])) == 8
    assert "ticktext" not in shown["global_2"]["layout"]["xaxis"]   # 2D: steps are frames

    at.switch_page("views/temporal.py").run()
    assert_clean(at)
    shown = figures(at)
    sf_matrix = traces(shown["matrix_1_0"], "heatmap")[0]
    assert array(sf_matrix["z"]).shape == (8, 8)             # GTA's M̂ on SlowFast is T'×T' = 8×8
    assert shown["matrix_1_0"]["layout"]["yaxis"]["ticktext"][0] == "0: f0–3"
    assert any("slow.res3.1: 8 time steps" in c for c in captions(at))

    at.switch_page("views/regions.py").run()
    assert_clean(at)
    assert any("grid of slow.res3.1" in c for c in captions(at))
    regions = figures(at)["regions_fig"]
    assert len(traces(regions, "image")) % 8 == 0 and regions["layout"]["annotations"][0]["text"] == "0: f0–3"


def test_interpretation_views_run_on_3d_models(app_3d):
    at = choose(app_3d.run(), MODELS[:2])       # the 2D model's interpretation views are tested elsewhere
    at.switch_page("views/order_probe.py").run()
    assert_clean(at)
    verdicts = [c for c in captions(at) if "by construction" in c]
    assert len(verdicts) == 2 and all(c.startswith("Order-sensitive") for c in verdicts)
    assert all("temporal convolutions" in v for v in verdicts)

    at.switch_page("views/knockout.py").run()
    assert_clean(at)
    assert {"knockout_0", "knockout_1"} <= set(figures(at))

    at.switch_page("views/swapped.py").run()
    assert_clean(at)
    assert len(traces(figures(at)["swap_nl_0"], "heatmap")) == 2   # I3D-NL: its 2 time steps

    at.session_state["ig_steps"] = 4                         # before the page first draws (default 32)
    at.switch_page("views/attributions.py").run()
    assert at.select_slider(key="ig_steps").value == 4
    assert_clean(at)
    assert len(traces(figures(at)["cam_1"], "image")) == 32   # SlowFast Grad-CAM spread over its 32 frames
    assert len(traces(figures(at)["cam_0"], "image")) == 16   # I3D: 16 frames
