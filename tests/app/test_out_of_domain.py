"""Issue 10.6: every model says what it was trained on; a video from elsewhere gets a visible notice
with the prediction's entropy, instead of a bare confident bar. Shipped checkpoint, bundled clips."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app import ui
from gta_core.checkpoint import read_config
from gta_core.views import domain_check, prediction_entropy, video_origin
from tests.app.conftest import ROOT, assert_clean

TEMPORAL = ROOT / "checkpoints/temporal_r2d18_gta"
APPEARANCE = ROOT / "checkpoints/appearance_r2d18_gta"
SYNTH = ROOT / "assets/synth"
REAL = "real/big_buck_bunny_720p.mp4"


def test_entropy_in_nats_and_as_a_fraction_of_log_c():
    assert prediction_entropy(np.array([1.0, 0.0, 0.0, 0.0])) == (0.0, 0.0)
    nats, fraction = prediction_entropy(np.full(4, 0.25))
    assert math.isclose(nats, math.log(4)) and math.isclose(fraction, 1.0)
    nats, fraction = prediction_entropy(np.array([0.5, 0.5, 0.0]))
    assert math.isclose(nats, math.log(2)) and math.isclose(fraction, math.log(2) / math.log(3))


def test_domain_of_shipped_checkpoints_and_bundled_clips():
    temporal, appearance = read_config(TEMPORAL).dataset, read_config(APPEARANCE).dataset
    manifest = {row["file"]: row["variant"] for row in json.loads((SYNTH / "manifest.json").read_text())["videos"]}
    clip = next(SYNTH / f for f, v in manifest.items() if v == "temporal")
    other = next(SYNTH / f for f, v in manifest.items() if v == "appearance")
    assert video_origin(clip) == {"name": "synthetic", "variant": "temporal"}
    assert video_origin(ROOT / "assets" / REAL) is None
    check = domain_check(temporal, clip)
    assert check.in_domain is True and check.trained_on == "synthetic (SSv2 layout) · temporal"
    assert domain_check(temporal, other).in_domain is False          # the other synthetic variant
    assert domain_check(appearance, other).in_domain is True
    assert domain_check(temporal, ROOT / "assets" / REAL).in_domain is False
    kinetics = {"name": "Kinetics-400", "labels_file": None}           # an imported checkpoint
    check = domain_check(kinetics, clip)
    assert check.in_domain is False and check.trained_on == "Kinetics-400"


@pytest.fixture
def shipped_app(monkeypatch):
    monkeypatch.setenv("GTA_LENS_CHECKPOINTS", os.pathsep.join([str(TEMPORAL), str(APPEARANCE)]))
    monkeypatch.setenv("GTA_LENS_ASSETS", str(ROOT / "assets"))
    monkeypatch.delenv("GTA_LENS_VIDEOS", raising=False)
    return AppTest.from_file(str(ROOT / "app/main.py"), default_timeout=120)


def test_predictions_warn_out_of_domain_with_the_entropy(shipped_app):
    at = shipped_app.run()
    widget = at.multiselect(key="checkpoints")
    widget.set_value([o for o in widget.options if o.startswith("temporal_r2d18_gta")]).run()
    assert_clean(at)
    assert at.selectbox(key="video_Bundled").value.startswith("synth/temporal__")
    assert any("trained on synthetic (SSv2 layout) · temporal" in m.value for m in at.markdown)
    assert not [w.value for w in at.warning if "out of domain" in w.value.lower()]
    at.selectbox(key="video_Bundled").set_value(REAL).run()
    assert_clean(at)
    probs = at.session_state[ui.CONTEXT_KEY].results[0].probs
    nats, fraction = prediction_entropy(probs)
    notices = [w.value for w in at.warning if "out of domain" in w.value.lower()]
    assert len(notices) == 1, [w.value for w in at.warning]
    assert "synthetic (SSv2 layout) · temporal" in notices[0]
    assert f"{nats:.2f} nats" in notices[0] and f"{fraction:.0%}" in notices[0]


def test_two_checkpoints_of_one_architecture_have_different_headers(shipped_app):
    """Issue 10.5: the shipped temporal and appearance GTAs (same architecture, same dataset name) are told
    apart by their headers: the dataset's variant is shown."""
    at = shipped_app.run()
    assert_clean(at)
    headers = [m.value for m in at.markdown if m.value.startswith(("**temporal_r2d18_gta**", "**appearance_r2d18_gta**"))]
    assert len(headers) == 2
    below = [h.split("  \n", 1)[1] for h in headers]
    assert below[0] != below[1]
    assert "synthetic (SSv2 layout) · temporal" in headers[0] and "synthetic (SSv2 layout) · appearance" in headers[1]


def test_temporal_comparison_tells_a_and_b_apart(shipped_app):
    """Issue 10.5: A and B of the comparison name their dataset and its variant."""
    at = shipped_app.run()
    at.switch_page("views/temporal.py").run()
    assert_clean(at)
    captions = [c.value for c in at.caption if c.value.startswith(("A: ", "B: "))]
    assert captions == ["A: temporal_r2d18_gta · synthetic (SSv2 layout) · temporal",
                        "B: appearance_r2d18_gta · synthetic (SSv2 layout) · appearance"]
