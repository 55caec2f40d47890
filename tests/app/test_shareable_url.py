"""Issue 10.9: the video, checkpoints, view and query point live in the URL (st.query_params);
a fresh session opened on that URL draws the same figure."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT, assert_clean, choose, figures


def test_a_link_opens_the_same_figure(app):
    at = choose(app.run(), ["b_dnl", "c_gta"])
    at.selectbox(key="video_Bundled").set_value("other.mp4").run()
    at.switch_page("views/query.py").run()
    at.selectbox(key="q_block").set_value("res4.1").run()
    at.slider(key="q_t").set_value(2).run()
    at.slider(key="q_y").set_value(10).run()
    at.slider(key="q_x").set_value(90).run()
    assert_clean(at)
    params = dict(at.query_params)
    assert params == {
        "source": "Bundled", "video": "other.mp4", "models": ["b_dnl", "c_gta"], "view": "query",
        "block": "res4.1", "t": "2", "y": "10", "x": "90",
    }
    shared = figures(at)

    colleague = AppTest.from_file(str(ROOT / "app/main.py"), default_timeout=60)
    colleague.query_params.update(params)
    colleague.run()
    assert_clean(colleague)
    assert colleague.selectbox(key="video_Bundled").value == "other.mp4"
    assert [o.split(" · ")[0] for o in colleague.multiselect(key="checkpoints").value] == ["b_dnl", "c_gta"]
    assert [colleague.slider(key=k).value for k in ("q_t", "q_y", "q_x")] == [2, 10, 90]
    assert colleague.selectbox(key="q_block").value == "res4.1"
    opened = figures(colleague)
    assert sorted(opened) == sorted(shared) and "spatial_0" in opened            # the query view, same charts
    for key in ("spatial_0", "temporal_0", "spatial_1", "global_1"):
        assert opened[key] == shared[key], key                                    # the same data, same query cross
    assert dict(colleague.query_params) == params


def test_a_bad_link_falls_back_to_the_defaults(app):
    app.query_params.update({"video": "missing.mp4", "models": ["nope"], "t": "x", "y": "500", "block": "zz"})
    at = app.run()
    assert_clean(at)
    assert at.selectbox(key="video_Bundled").value == "moving.mp4"
    assert len(at.multiselect(key="checkpoints").value) == 3
    assert [at.slider(key=k).value for k in ("q_y", "q_x")] == [50, 50]
    assert at.query_params["video"] == "moving.mp4" and "view" not in at.query_params   # the default view: no path
