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
