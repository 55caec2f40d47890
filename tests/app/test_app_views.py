"""AppTest: every view with the tiny demo checkpoints; shapes read from the plotly JSON."""
from __future__ import annotations

import numpy as np
import pytest

from app import engine
from tests.app.conftest import LABEL, array, assert_clean, choose, figures, traces
from tests.app.fixtures import LEARNED_CHANGE

T = 8                   # frames of the demo models
KEY_GRID = (7, 7)       # res3.1 of the demo models at 112²: 14×14 queries, keys pooled 2×2
THREE = ["a_nl", "b_dnl", "c_gta"]


def test_predictions_sidebar_widgets_and_top_k(app):
    at = app.run()
    assert_clean(at)
    assert at.radio(key="video_source").options == ["Bundled", "Dataset", "Upload"]   # Dataset: the sample set
    assert at.selectbox(key="video_Bundled").value == "moving.mp4"        # the labelled video first
    assert len(at.multiselect(key="checkpoints").value) == 3             # first three by default
    assert at.selectbox(key="device").options[:2] == ["auto", "cpu"]
    assert at.selectbox(key="precision").options == ["float32", "bfloat16"]
    for key in ("q_t", "q_y", "q_x", "top_k"):
        assert at.slider(key=key) is not None
    at.slider(key="top_k").set_value(4).run()
    figs = figures(at)
    assert sorted(figs) == ["strip_0", "strip_1", "strip_2", "topk_0", "topk_1", "topk_2"]
    bars = traces(figs["topk_0"], "bar")[0]
    assert len(bars["y"]) == 4
    probs = array(bars["x"])
    assert np.all(np.diff(probs) >= 0)                                   # best on top (plotted bottom-up)
    assert len(traces(figs["strip_0"], "image")) == T
    assert any(LABEL in m.value for m in at.markdown)                    # the ground truth is shown
    assert any("ground truth rank" in c.value for c in at.caption)


def test_query_point_figures_and_no_rerun(app):
    at = choose(app.run(), THREE)
    at.switch_page("views/query.py").run()
    assert_clean(at)
    calls = sum(engine.INFERENCE_CALLS.values())
    figs = figures(at)
    # NL (Fig. 1): one overlay + one hover heatmap on the key grid per frame.
    nl = figs["nl_0"]
    assert len(traces(nl, "image")) == T
    heat = traces(nl, "heatmap")
    assert len(heat) == T and all(array(h["z"]).shape == KEY_GRID for h in heat)
    assert np.isclose(sum(array(h["z"]).sum() for h in heat), 1.0, atol=1e-4)  # one softmax row over T·h·w
    # DNL: spatial map in the query frame, temporal weights over T frames summing to 1.
    assert array(traces(figs["spatial_1"], "heatmap")[0]["z"]).shape == KEY_GRID
    weights = array(traces(figs["temporal_1"], "bar")[0]["y"])
    assert weights.shape == (T,) and np.isclose(weights.sum(), 1.0, atol=1e-4)
    # GTA: spatial map and the learned rows of M̂_P, M̂_R.
    assert array(traces(figs["spatial_2"], "heatmap")[0]["z"]).shape == KEY_GRID
    assert [b["name"] for b in traces(figs["global_2"], "bar")] == ["M̂_P", "M̂_R"]

    marker_before = traces(figs["spatial_1"], "scatter")[0]["x"]
    at.slider(key="q_y").set_value(10).run()
    at.slider(key="q_x").set_value(90).run()
    at.slider(key="q_t").set_value(2).run()
    at.selectbox(key="q_block").set_value("res4.1").run()
    assert_clean(at)
    assert sum(engine.INFERENCE_CALLS.values()) == calls                 # nothing reran
    figs = figures(at)
    assert traces(figs["spatial_1"], "scatter")[0]["x"] != marker_before
    assert array(traces(figs["nl_0"], "heatmap")[0]["z"]).shape == (4, 4)  # res4.1: 7×7 queries, 4×4 keys
    assert any("t = 2" in m.value and "res4.1" in m.value for m in at.markdown)


def test_query_point_one_model_at_full_width(app):
    """Issue 10.5: a heavy view can show one model alone, its frames in one full-width row."""
    at = choose(app.run(), THREE)
    at.switch_page("views/query.py").run()
    selector = at.radio(key="query_models")
    assert selector.options == ["all, side by side", *THREE]
    selector.set_value("a_nl").run()
    assert_clean(at)
    figs = figures(at)
    assert sorted(figs) == ["nl_0", "picker"]
    layout = figs["nl_0"]["layout"]
    rows = {tuple(layout[f"yaxis{'' if k == 0 else k + 1}"]["domain"]) for k in range(T)}
    assert len(rows) == 1                                                # all T frames in one row
    assert len(traces(figs["nl_0"], "image")) == T


def test_temporal_matrices_and_comparison(app):
    at = choose(app.run(), ["b_dnl", "c_gta", "d_gta_appearance"])
    at.switch_page("views/temporal.py").run()
    assert_clean(at)
    figs = figures(at)
    assert array(traces(figs["matrix_0_0"], "heatmap")[0]["z"]).shape == (T, T)     # TA mean over pixels
    assert array(traces(figs["matrix_1_0"], "heatmap")[0]["z"]).shape == (T, T)     # mean |M̂_P|
    grid = traces(figs["heads_1_0"], "heatmap")
    assert len(grid) == 4 * 4 and all(array(h["z"]).shape == (T, T) for h in grid)  # G × N_h for demo GTA
    assert not any(k.startswith("change_") for k in figs)        # random weights: no seed, no M̂₀
    assert any("No learned change" in c.value for c in at.caption)
    # Two GTA checkpoints side by side through the invariant summary, on one colour scale, and A − B.
    at.selectbox(key="compare_a").set_value("c_gta · res3.1 · M̂_P invariant summary")
    at.selectbox(key="compare_b").set_value("d_gta_appearance · res3.1 · M̂_P invariant summary").run()
    figs = figures(at)
    fig_a, fig_b = (traces(figs[k], "heatmap")[0] for k in ("compare_fig_a", "compare_fig_b"))
    a, b = array(fig_a["z"]), array(fig_b["z"])
    diff = array(traces(figs["compare_fig_diff"], "heatmap")[0]["z"])
    assert a.shape == b.shape == diff.shape == (T, T)
    np.testing.assert_allclose(diff, a - b, atol=1e-6)
    assert np.all(a >= 0) and not np.allclose(a, b)
    assert a.mean() == pytest.approx(1.0, rel=1e-5)                       # the summary is mean-normalised
    assert (fig_a["zmin"], fig_a["zmax"]) == (fig_b["zmin"], fig_b["zmax"]) == pytest.approx(
        (min(a.min(), b.min()), max(a.max(), b.max())), rel=1e-5)
    assert any("invariant summary" in c.value and "permuted" in c.value for c in at.caption)
    # The fixture's seed-vs-seed numbers (within 0.8 and 0.7 > across 0.3) make temporal vs appearance meaningful.
    assert any("A per-dataset difference" in s.value for s in at.success)


def test_temporal_learned_change_and_verdict(app):
    at = choose(app.run(), ["e_gta_trained", "f_gta_trained_appearance"])
    at.switch_page("views/temporal.py").run()
    assert_clean(at)
    figs = figures(at)
    for index in range(2):
        for m in range(2):                                         # M̂_P and M̂_R
            change = traces(figs[f"change_{index}_{m}"], "heatmap")
            assert len(change) == 16
            np.testing.assert_allclose(array(change[0]["z"]), LEARNED_CHANGE, atol=1e-6)
    assert any("rebuilt from seed 5" in c.value for c in at.caption)
    assert any("rebuilt from seed 6" in c.value for c in at.caption)
    # Same dataset for A and B: no verdict either way.
    at.selectbox(key="compare_b").set_value("e_gta_trained · res4.1 · M̂_P invariant summary").run()
    assert not at.success and not at.warning
    assert any("Not shown to be a dataset effect" in c.value for c in at.caption)


def test_regions_strongest_first_and_selector(app):
    at = choose(app.run(), ["c_gta"])
    at.switch_page("views/regions.py").run()
    assert_clean(at)
    selector = at.selectbox(key="region_pick")
    strengths = [float(o.rsplit("strength ", 1)[1].rstrip(")")) for o in selector.options]
    assert len(strengths) == 4                                           # K = C/8 = 32/8 at res3 of the demo
    assert strengths == sorted(strengths, reverse=True)
    at.slider(key="regions_shown").set_value(2).run()
    figs = figures(at)
    assert len(traces(figs["regions_fig"], "image")) == 2 * T
    maps = [array(h["z"]) for h in traces(figs["regions_fig"], "heatmap")]
    assert all(m.shape == (14, 14) and np.isclose(m.sum(), 1.0, atol=1e-4) for m in maps)
    at.slider(key="regions_shown").set_value(1).run()
    third = selector.options[2]
    at.selectbox(key="region_pick").set_value(third).run()
    rows = [a["text"] for a in figures(at)["regions_fig"]["layout"]["annotations"] if a["text"].startswith("region")]
    assert rows[0].startswith(f"region {third.split()[1]}<br>") and len(rows) == 2   # the picked one, then the strongest


def test_regions_one_model_at_a_time_legible_with_colour_bars(app):
    """Issue 10.5: not 4 models × 8 frames of ~25 px: a model selector, one full-width figure, big cells,
    no repeated row, a colour bar per row (or one shared, toggled)."""
    at = choose(app.run(), ["c_gta", "d_gta_appearance", "a_nl"])
    at.switch_page("views/regions.py").run()
    assert_clean(at)
    assert at.radio(key="regions_model").options == ["c_gta", "d_gta_appearance"]   # NL has no regions
    figs = figures(at)
    assert list(figs) == ["regions_fig"]
    figure = figs["regions_fig"]
    rows = [a["text"] for a in figure["layout"]["annotations"] if a["text"].startswith("region")]
    assert len(rows) == 3 == len(set(rows))                              # default 3 strongest, the picked one once
    assert figure["layout"]["height"] >= 3 * 140                         # ≥ 140 px per frame row
    bars = [t for t in figure["data"] if (t.get("marker") or {}).get("showscale")]
    assert len(bars) == 3 and len({(b["marker"]["cmin"], b["marker"]["cmax"]) for b in bars}) == 3
    at.toggle(key="regions_shared").set_value(True).run()
    bars = [t for t in figures(at)["regions_fig"]["data"] if (t.get("marker") or {}).get("showscale")]
    assert len(bars) == 1
    at.radio(key="regions_model").set_value("d_gta_appearance").run()
    assert_clean(at)
    assert any(m.value.startswith("**d_gta_appearance**") for m in at.markdown)


def test_swapped_attention_differs_from_dnl(app):
    at = choose(app.run(), ["a_nl", "b_dnl"])
    at.switch_page("views/swapped.py").run()
    assert_clean(at)
    fig = figures(at)["swapped_1"]
    assert len(traces(fig, "image")) == 2
    original, swapped = (array(b["y"]) for b in traces(fig, "bar"))
    assert original.shape == swapped.shape == (T,)
    assert not np.allclose(original, swapped)
    assert "swap_nl_0" in figures(at)                                    # NL's row, Fig. 7's first row


def test_switching_views_reruns_nothing(app):
    engine.memory_cache().clear()                                        # the counter is the app's own
    before = sum(engine.INFERENCE_CALLS.values())
    at = choose(app.run(), THREE)
    calls = sum(engine.INFERENCE_CALLS.values())
    assert calls - before == 3                                           # one run per chosen checkpoint
    for page in ("views/query.py", "views/temporal.py", "views/regions.py", "views/swapped.py", "views/predictions.py"):
        at.switch_page(page).run()
        assert_clean(at)
    assert sum(engine.INFERENCE_CALLS.values()) == calls


def test_bad_upload_is_a_message_and_the_next_video_works(app, video_root):
    at = choose(app.run(), ["b_dnl"])
    at.radio(key="video_source").set_value("Upload").run()
    at.file_uploader(key="video_upload").upload("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100).run()
    assert not at.exception
    assert at.error and "clip.mp4" in at.error[0].value
    assert "Traceback" not in at.error[0].value
    at.file_uploader(key="video_upload").clear()
    at.file_uploader(key="video_upload").upload("good.mp4", (video_root / "other.mp4").read_bytes()).run()
    assert_clean(at)
    assert len(traces(figures(at)["strip_0"], "image")) == T


def test_broken_checkpoint_is_a_message(app, checkpoint_root, tmp_path, monkeypatch):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        data = (checkpoint_root / "b_dnl" / name).read_bytes()
        (broken / name).write_bytes(data if name == "config.json" else data[: len(data) // 2])
    monkeypatch.setenv("GTA_LENS_CHECKPOINTS", f"{checkpoint_root}:{broken}")
    at = choose(app.run(), ["broken", "c_gta"])
    assert not at.exception
    assert len(at.error) == 1 and "not a valid safetensors file" in at.error[0].value
    assert sorted(figures(at)) == ["strip_0", "topk_0"]                  # the good checkpoint still shows
