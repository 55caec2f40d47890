"""AppTest: the Attributions, Order probe, Knockout and Export views on the tiny random demo checkpoints."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from tests.app.conftest import array, assert_clean, choose, figures, traces

T = 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for the in-process app: on 2 shared cores a second thread spin-waits."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_attributions_view_per_model(app):
    at = app
    at.session_state["ig_steps"] = 4
    at = choose(at.run(), ["a_nl", "c_gta"])
    at.switch_page("views/attributions.py").run()
    assert_clean(at)
    figs = figures(at)
    assert {"ig_0", "cam_0", "curves_0", "occlusion_0", "ig_1", "cam_1", "curves_1", "occlusion_1"} <= set(figs)
    assert len(traces(figs["ig_1"], "image")) == T
    assert len(traces(figs["cam_1"], "heatmap")) == T
    shares = [array(b["y"]) for b in traces(figs["curves_1"], "bar")]
    assert len(shares) == 2 and all(s.shape == (T,) and np.isclose(s.sum(), 1.0, atol=1e-5) for s in shares)
    assert array(traces(figs["occlusion_0"], "bar")[0]["y"]).shape == (T,)
    assert any("IG completeness gap" in c.value for c in at.caption)
    # A class the person picks instead of the predicted one.
    at.toggle(key="attr_predicted").set_value(False).run()
    at.selectbox(key="attr_class_1").set_value(at.selectbox(key="attr_class_1").options[2]).run()
    assert_clean(at)
    assert any(at.selectbox(key="attr_class_1").options[2] in c.value for c in at.caption)


def test_order_probe_view_nl_and_dnl_do_not_move(app):
    at = choose(app.run(), ["a_nl", "b_dnl", "c_gta"])
    at.switch_page("views/order_probe.py").run()
    assert_clean(at)
    bars = traces(figures(at)["order_all"], "bar")
    assert [b["name"] for b in bars] == ["original", "reversed", "shuffled"]
    p = np.stack([array(b["y"]) for b in bars])                          # (orders, models)
    assert p.shape == (3, 3)
    np.testing.assert_allclose(p[1:, :2], p[:1, :2].repeat(2, axis=0), atol=1e-6)   # NL, DNL: no change
    assert np.abs(p[1:, 2] - p[0, 2]).max() > 1e-6                                  # GTA moves
    assert sum("max |Δ logit|" in c.value for c in at.caption) == 6
    # Issue 10.5: the top-1 class of every order in full (st.metric cut long names at the left).
    assert not at.metric
    names = at.session_state["gta_lens_context"].results[2].config.class_names
    shown = [m.value for m in at.markdown if m.value.startswith(("**original**", "**reversed**", "**shuffled**"))]
    assert len(shown) == 9 and all(any(name in line for name in names) for line in shown)


def test_knockout_view_ranks_components(app):
    at = choose(app.run(), ["c_gta"])
    at.switch_page("views/knockout.py").run()
    assert_clean(at)
    bars = traces(figures(at)["knockout_0"], "bar")[0]
    changes = np.abs(array(bars["x"]))
    assert len(changes) == 20 and np.all(np.diff(changes) >= 0)         # largest on top (plotted bottom-up)
    picker = at.selectbox(key="knockout_pick_0")
    assert "res3.1 pixel head 0" in picker.options and "res4.1 region 7" in picker.options
    picker.set_value("res3.1 block").run()
    assert_clean(at)
    assert len(at.dataframe) == 1
    # Issue 10.5: the numbers first, the (long) class name last, so a narrow column still shows them.
    table = at.dataframe[0].value
    assert list(table.columns) == ["logit", "knocked out", "Δ", "class"]
    assert table["logit"].dtype.kind == "f" and len(table) == 5


def test_export_view_offers_a_zip(app):
    at = app
    at.session_state["export_ig_steps"] = 4
    at = choose(at.run(), ["b_dnl"])
    at.switch_page("views/export.py").run()
    at.radio(key="export_knockout").set_value("blocks").run()
    at.button(key="export_run").click().run()
    assert_clean(at)
    request, data = at.session_state["export_zip"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
    assert any(n.endswith("/figures.html") for n in names)
    assert any(n.endswith("/attention.mp4") for n in names)
    assert any(n.endswith("/swapped/res3.1_b_dnl.png") for n in names)
    assert sum(n.endswith(".png") for n in names) >= 10
    assert at.get("download_button")
