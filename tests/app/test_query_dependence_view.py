"""AppTest: the Query dependence page and the score beside each map of the Query point view."""
from __future__ import annotations

import numpy as np

from tests.app.conftest import array, assert_clean, choose, figures, traces

THREE = ["a_nl", "b_dnl", "c_gta"]


def test_query_dependence_page_and_query_point_numbers(app):
    at = choose(app.run(), THREE)
    at.switch_page("views/query_dependence.py").run()
    assert_clean(at)
    figs = figures(at)
    bars = traces(figs["qd_bars"], "bar")
    assert [b["name"] for b in bars[::2]] == THREE                    # models side by side
    gta_js = dict(zip(bars[4]["x"], array(bars[4]["y"])))
    assert gta_js["res3.1 · GTA M̂"] == 0.0                           # analytic: the same at every pixel
    nl_explained = array(bars[1]["y"])
    assert np.all((nl_explained >= 0) & (nl_explained <= 1))
    # The rows of 4 far-apart queries per model, one colour scale: NL rows over T steps side by side.
    nl_rows = traces(figs["qd_rows_0"], "heatmap")
    assert len(nl_rows) == 4 and array(nl_rows[0]["z"]).shape == (7, 8 * 7 + 7)
    assert len({(h["zmin"], h["zmax"]) for h in nl_rows}) == 1
    assert any("GTA M̂: JS 0.000 bits, 100% explained by the mean row (analytic)" in c.value for c in at.caption)

    at.switch_page("views/query.py").run()
    assert_clean(at)
    captions = [c.value for c in at.caption if c.value.startswith("Query dependence of this clip")]
    assert len(captions) == 3 and "NL: JS" in captions[0] and "TA: JS" in captions[1]


def test_query_point_footprint_beside_the_nominal_cell(app):
    """R2D runs frame by frame: the footprint of a query is its own frame, which is also the nominal one."""
    at = choose(app.run(), ["a_nl"])
    at.switch_page("views/query.py").run()
    at.toggle(key="query_footprint").set_value(True).run()
    assert_clean(at)
    figure = figures(at)["footprint_0"]
    mass = array(traces(figure, "bar")[0]["y"])
    assert mass.shape == (8,) and np.isclose(mass.sum(), 1.0) and np.count_nonzero(mass) == 1
    assert len(traces(figure, "image")) == 1 and "nominal" in figure["layout"]["title"]["text"]


def test_signed_rows_are_drawn_on_a_diverging_scale_symmetric_about_zero():
    """Dot-product NL rows: the colour bar runs −max|w| … +max|w| blue-white-red, 0 is white, titles give signed sums."""
    from gta_core.figures import overlay, spacetime_figure

    frames = np.zeros((2, 16, 16, 3), np.uint8)
    row = np.array([[[0.2, -0.5]], [[0.1, 0.0]]], dtype=np.float32)      # (T=2, h=1, w=2)
    figure = spacetime_figure(frames, row, 0, 0.5, 0.5, signed=True).to_plotly_json()
    (bar,) = [t["marker"] for t in figure["data"] if t.get("marker", {}).get("showscale")]
    assert (bar["cmin"], bar["cmax"]) == (-0.5, 0.5)
    assert [stop[1] for stop in bar["colorscale"]] == ["rgb(33,102,172)", "rgb(247,247,247)", "rgb(178,24,43)"]
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert titles[0].startswith("t=0: Σ -0.3") and titles[1].startswith("t=1: Σ +0.1")
    # A zero weight paints white (blended half over the black frame), a positive one red, a negative one blue.
    painted = overlay(np.zeros((2, 2, 3), np.uint8), np.array([[0.0, 0.5], [-0.5, 0.0]]), signed=True)
    assert abs(int(painted[0, 0, 0]) - 124) <= 2 and painted[0, 1, 0] > painted[0, 1, 2]
    assert painted[1, 0, 2] > painted[1, 0, 0]
