"""AppTest: two models that crop the scene differently are queried at one point of the scene.

c_gta resizes the 128×160 test video to 128 high and crops 112² (crop box 8–120 of 128 rows);
g_three resizes it to 112 high and crops 112² (ThreeCrop's centre square: every row). The sidebar's
point is a fraction of the reference crop (c_gta's); g_three reads the same scene point in its own crop.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.app.conftest import app_on, assert_clean, choose, figures
from tests.app.fixtures import make_random_checkpoint


@pytest.fixture(scope="module")
def root_crops(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints_crops")
    make_random_checkpoint(root / "c_gta", "demo_r2d18_gta", seed=3)
    shutil.copytree(root / "c_gta", root / "g_three")
    config_path = root / "g_three" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(resize_shorter=112, crop="three", model_name="demo_r2d18_gta, ThreeCrop 112")
    config_path.write_text(json.dumps(config))
    return root


@pytest.fixture
def app_crops(monkeypatch, root_crops, video_root):
    yield from app_on(monkeypatch, [root_crops], video_root)


def test_one_scene_point_through_two_crops(app_crops):
    at = choose(app_crops.run(), ["c_gta", "g_three"])
    at.switch_page("views/query.py").run()
    at.slider(key="q_y").set_value(5).run()            # 5.5 % of c_gta's crop: scene row 8 + 0.055·112 = 14.2 of 128
    assert_clean(at)
    cells = [c.value for c in at.caption if "query cell" in c.value]
    # c_gta: ⌊0.055·14⌋ = 0; g_three: its crop spans every row, 14.2/128 = 0.111 -> ⌊0.111·14⌋ = 1.
    assert "query cell (0, 7)" in cells[0] and "query cell (1, 7)" in cells[1], cells
    picker = figures(at)["picker"]
    # g_three's crop in c_gta's pixels (centres at integers): 8 rows and 8 columns more on each side.
    (box,) = picker["layout"]["shapes"]
    assert box["name"] == "g_three"
    assert [box[k] for k in ("y0", "y1", "x0", "x1")] == pytest.approx([-8.5, 119.5, -8.5, 119.5])


def test_predictions_say_when_the_source_tests_more_views(app_crops):
    at = choose(app_crops.run(), ["c_gta", "g_three"])
    assert_clean(at)
    notes = [c.value for c in at.caption if "views (clips × crops)" in c.value]
    assert len(notes) == 1 and notes[0].startswith("Its source tests 3 views"), notes    # g_three only
