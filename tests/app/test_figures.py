"""Figure builders and gta_core.views, called directly (no Streamlit, no browser)."""
from __future__ import annotations

import numpy as np
import torch

from gta_core import figures
from gta_core import capture, create_model
from gta_core.views import grid_cell, query_view, region_view, temporal_matrices
from tests.app.conftest import array, traces
from tests.helpers import activate_blocks, tiny_clip


def test_overlay_colours_the_peak():
    frame = np.full((32, 32, 3), 128, np.uint8)
    attention = np.zeros((4, 4), np.float32)
    attention[0, 3] = 1.0                                                # top-right key cell
    out = figures.overlay(frame, attention)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    peak, cold = out[2, 29], out[29, 2]
    assert peak[0] > peak[2] and cold[2] > cold[0]                       # jet: red at the peak, blue elsewhere


def test_pooled_key_cells_are_drawn_where_they_pool():
    """res4 of the demo models at 112²: a 7×7 grid, 2×2 ceil pooling -> 4×4 keys over pixels [0,32) [32,64)
    [64,96) [96,112), not every 28 px; MMAction2's floor pooling -> 3×3 keys over [0,96), the rest uncovered."""
    torch.manual_seed(0)
    clip = tiny_clip(batch=1, frames=8, size=112)
    for name, overrides, edges in (
        ("demo_r2d18_nl", {}, [0, 32, 64, 96, 112]),
        ("demo_r2d18_nl", {"nl_pool_ceil": False}, [0, 32, 64, 96]),
        ("demo_r2d18_gta", {}, [0, 32, 64, 96, 112]),
    ):
        model = activate_blocks(create_model(name, num_classes=5, **overrides).eval())
        record = capture(model, clip).records["res4.1"]
        view = query_view(record, 2, 0.5, 0.5)
        assert [round(a * 112) for a, _ in view.key_extents[1]] + [round(view.key_extents[1][-1][1] * 112)] == edges
        frame = np.full((112, 112, 3), 128, np.uint8)
        keys = np.zeros(view.key_grid, np.float32)
        keys[:, -1] = 1.0                                                 # the last key column is hot
        out = figures.overlay(frame, keys, extents=view.key_extents)
        last = edges[-2]
        assert out[50, last + 2][0] > out[50, last + 2][2]               # red right of the last edge
        assert out[50, last - 2][2] > out[50, last - 2][0]               # blue just left of it
        if edges[-1] < 112:
            assert (out[:, edges[-1]:] == 128).all()                      # no key pools these pixels: uncoloured
        maps = view.spacetime[2] if view.spacetime is not None else view.spatial
        fig = (figures.spacetime_figure(np.repeat(frame[None], 8, 0), view.spacetime, 2, 0.5, 0.5, 4, view.key_extents)
               if view.spacetime is not None else figures.spatial_figure(frame, maps, 0.5, 0.5, "", view.key_extents))
        hover = traces(fig.to_plotly_json(), "heatmap")[0]
        assert [e + 0.5 for e in hover["x"]] == edges and [e + 0.5 for e in hover["y"]] == edges


def test_grid_cell_maps_crop_pixels_to_the_feature_grid():
    # y = Y·H / input_size: pixel row 56 of a 112 crop is row 7 of a 14-row grid, row 3 of a 7-row grid.
    assert grid_cell(56 / 112, 0.0, (14, 14)) == (7, 0)
    assert grid_cell(56 / 112, 111 / 112, (7, 7)) == (3, 6)
    assert grid_cell(0.999, 0.999, (4, 5)) == (3, 4)


def test_query_views_match_the_records():
    torch.manual_seed(0)
    clip = tiny_clip(batch=1, frames=8, size=64)
    for name in ("demo_r2d18_nl", "demo_r2d18_dnl", "demo_r2d18_gta"):
        model = activate_blocks(create_model(name, num_classes=5).eval())
        record = capture(model, clip).records["res3.1"]
        view = query_view(record, 3, 0.5, 0.25)
        assert view.cell == (4, 2)                                       # 64² input: res3 grid 8×8
        if view.kind == "NL":
            np.testing.assert_array_equal(view.spacetime, record.row(3, 4, 2).numpy())
        else:
            np.testing.assert_array_equal(view.spatial, record.spatial.map_at(3, 4, 2).numpy())
        if view.kind == "DNL":
            np.testing.assert_array_equal(view.temporal, record.temporal.weights_at(3, 4, 2).numpy())
            assert list(temporal_matrices(record)) == ["TA mean over pixels"]
        if view.kind == "GTA":
            assert set(view.global_rows) == {"M̂_P", "M̂_R"}
            regions = region_view(record)
            assert regions.maps.shape == (8, 4, 8, 8)
            assert regions.order[0] == int(np.argmax(regions.strength))


def test_spacetime_figure_layout_and_hover():
    frames = np.zeros((8, 56, 56, 3), np.uint8)
    row = np.random.default_rng(0).random((8, 4, 4)).astype(np.float32)
    fig = figures.spacetime_figure(frames, row / row.sum(), t=5, fy=0.5, fx=0.5, per_row=4).to_plotly_json()
    assert len(traces(fig, "image")) == 8
    heat = traces(fig, "heatmap")
    assert [array(h["z"]).shape for h in heat] == [(4, 4)] * 8
    assert all(h["opacity"] == 0 and "weight" in h["hovertemplate"] for h in heat)
    marker = traces(fig, "scatter")[0]
    assert marker["xaxis"] == "x6" and marker["x"] == [27.5]           # the cross sits on frame 5
    assert fig["layout"]["yaxis5"]["domain"][1] < fig["layout"]["yaxis"]["domain"][0]  # second row below


def test_matrix_figures():
    rng = np.random.default_rng(1)
    heads = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    grid = figures.head_grid_figure(heads, "M̂_P").to_plotly_json()
    assert len(traces(grid, "heatmap")) == 6
    bound = float(np.abs(heads).max())
    assert all(np.isclose(h["zmin"], -bound) and np.isclose(h["zmax"], bound) for h in traces(grid, "heatmap"))
    a, b = np.abs(heads[0, 0]), np.abs(heads[1, 1])
    diff = figures.difference_figure(a, b).to_plotly_json()
    np.testing.assert_allclose(array(traces(diff, "heatmap")[0]["z"]), a - b, atol=1e-6)


def test_swapped_and_regions_figures():
    frame = np.zeros((56, 56, 3), np.uint8)
    spatial, temporal = np.full((4, 4), 1 / 16, np.float32), np.full(8, 1 / 8, np.float32)
    fig = figures.swapped_figure(frame, (spatial, temporal), (spatial, temporal * 2), 3, 0.5, 0.5).to_plotly_json()
    assert len(traces(fig, "image")) == 2 and len(traces(fig, "bar")) == 2
    maps = np.full((8, 4, 7, 7), 1 / 49, np.float32)
    regions = figures.regions_figure(np.zeros((8, 56, 56, 3), np.uint8), maps, [2, 0], np.arange(4.0)).to_plotly_json()
    assert len(traces(regions, "image")) == 16
    assert [a["text"] for a in regions["layout"]["annotations"] if a["text"].startswith("region")] == [
        "region 2<br>2.000", "region 0<br>0.000",
    ]


def _axes(layout: dict, prefix: str) -> list[dict]:
    return [axis for key, axis in sorted(layout.items()) if key.startswith(prefix)]


def test_fig5_matrices_show_query_and_key_frame_axes():
    """Issue 10.5: the T×T matrices have visible axes: titles, one tick per frame, row 0 on top."""
    T = 8
    layout = figures.matrix_figure(np.random.default_rng(0).random((T, T)), "M̂_P").to_plotly_json()["layout"]
    x, y = layout["xaxis"], layout["yaxis"]
    assert x.get("visible") is not False and y.get("visible") is not False
    assert "key frame" in x["title"]["text"] and "query frame" in y["title"]["text"]
    assert list(x["tickvals"]) == list(range(T)) == list(y["tickvals"]) and x["showticklabels"] and y["showticklabels"]
    assert y["autorange"] == "reversed"
    assert layout["margin"]["l"] >= 40 and layout["margin"]["b"] >= 40          # room for the titles

    grid = figures.head_grid_figure(np.zeros((2, 3, T, T)), "M̂_P").to_plotly_json()["layout"]
    xs, ys = _axes(grid, "xaxis"), _axes(grid, "yaxis")
    assert len(xs) == len(ys) == 6
    assert all(a.get("visible") is not False and list(a["tickvals"]) == list(range(T)) for a in xs + ys)
    assert all(a["autorange"] == "reversed" for a in ys)
    titled_x = [a for a in xs if "key frame" in (a.get("title") or {}).get("text", "")]
    titled_y = [a for a in ys if "query frame" in (a.get("title") or {}).get("text", "")]
    assert len(titled_x) == 3 and len(titled_y) == 2                            # bottom row, left column


def test_per_frame_charts_without_a_query_frame_have_no_band():
    """Issue 10.5: the red query-frame band only where there is a query frame."""
    from gta_core.figures import temporal_importance_figure

    curves = {"Integrated Gradients": np.full(8, 1 / 8)}
    assert not temporal_importance_figure(curves, "share").to_plotly_json()["layout"].get("shapes")
    assert not figures.temporal_weights_figure(curves, None).to_plotly_json()["layout"].get("shapes")
    band = figures.temporal_weights_figure(curves, 3).to_plotly_json()["layout"]["shapes"]
    assert len(band) == 1 and (band[0]["x0"], band[0]["x1"]) == (2.5, 3.5)


def _colour_bars(figure: dict) -> list[dict]:
    return [t for t in figure["data"] if (t.get("marker") or {}).get("showscale")]


def test_attribution_strips_are_labelled_with_a_colour_bar():
    from gta_core.figures import attribution_strip_figure
    from gta_core.interpret import Attribution

    frames = np.zeros((4, 16, 16, 3), np.uint8)
    maps = np.random.default_rng(0).normal(size=(4, 16, 16)).astype(np.float32)
    for method, name in (("integrated_gradients", "Integrated Gradients"), ("grad_cam", "Grad-CAM")):
        attribution = Attribution(method, 0, 1.0, maps, maps.sum(axis=(1, 2)))
        figure = attribution_strip_figure(frames, attribution, per_row=4).to_plotly_json()
        assert name in figure["layout"]["title"]["text"]
        bars = _colour_bars(figure)
        shown = np.abs(maps) if method == "integrated_gradients" else np.maximum(maps, 0)
        assert len(bars) == 1 and np.isclose(bars[0]["marker"]["cmax"], shown.max())
        assert np.isclose(bars[0]["marker"]["cmin"], shown.min())


def test_region_maps_have_their_own_colour_bars_legible_cells_and_no_repeated_row():
    """Issue 10.5: a flat map and a peaked one must not look alike; cells big enough to read."""
    T, K = 8, 3
    frames = np.zeros((T, 112, 112, 3), np.uint8)
    maps = np.full((T, K, 4, 4), 1 / 16, np.float32)                   # region 0 flat
    maps[:, 1] = 0.0
    maps[:, 1, 0, 0] = 1.0                                               # region 1 peaked
    maps[:, 2] = np.linspace(0.01, 0.115, 16, dtype=np.float32).reshape(4, 4)
    figure = figures.regions_figure(frames, maps, [1, 0, 1], cell=140).to_plotly_json()
    rows = [a["text"] for a in figure["layout"]["annotations"] if a["text"].startswith("region")]
    assert rows == ["region 1", "region 0"]                              # the repeated region drawn once
    assert figure["layout"]["height"] >= 2 * 140
    bars = _colour_bars(figure)
    assert [(b["marker"]["cmin"], b["marker"]["cmax"]) for b in bars] == [(0.0, 1.0), (0.0625, 0.0625 + 1e-6)]
    shared = figures.regions_figure(frames, maps, [1, 0, 2], shared_scale=True).to_plotly_json()
    bars = _colour_bars(shared)
    assert len(bars) == 1 and (bars[0]["marker"]["cmin"], bars[0]["marker"]["cmax"]) == (0.0, 1.0)


def test_long_class_names_are_wrapped_not_cut():
    long = "Pretending to put something next to something else entirely"
    figure = figures.topk_figure([(0, long, 0.88), (1, "Covering something", 0.12)]).to_plotly_json()
    bar = figure["data"][0]
    labels = list(bar["y"])
    assert all(len(line) <= figures.attention.LABEL_WIDTH for label in labels for line in label.split("<br>"))
    assert [label.replace("<br>", " ") for label in labels] == ["Covering something", long]
    assert figure["layout"]["yaxis"]["automargin"] is True


def test_order_probe_bars_carry_whole_class_names():
    from gta_core.figures import order_probe_figure
    from gta_core.interpret import OrderProbe

    names = ["Pretending to put something next to something else", "Covering something"]
    logits = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probe = OrderProbe({"original": [0, 1], "reversed": [1, 0], "shuffled": [0, 1]}, logits, probs, 0)
    figure = order_probe_figure({"gta": probe}, {"gta": names}).to_plotly_json()
    texts = [t["text"][0].replace("<br>", " ") for t in figure["data"]]
    assert texts == [names[0], "≠ " + names[1], names[0]]


def test_query_point_maps_have_colour_bars():
    """Issue 10.5: a flat spatial map and a peaked one get different colour bars (the overlay alone is min-max)."""
    frame = np.zeros((112, 112, 3), np.uint8)
    flat, peaked = np.full((4, 4), 1 / 16, np.float32), np.zeros((4, 4), np.float32)
    peaked[1, 2] = 1.0
    ranges = []
    for spatial in (flat, peaked):
        bars = _colour_bars(figures.spatial_figure(frame, spatial, 0.5, 0.5, "spatial").to_plotly_json())
        assert len(bars) == 1
        ranges.append((bars[0]["marker"]["cmin"], bars[0]["marker"]["cmax"]))
    assert ranges == [(0.0625, 0.0625 + 1e-6), (0.0, 1.0)]
    row = np.random.default_rng(0).random((8, 4, 4)).astype(np.float32)
    row /= row.sum()
    frames = np.zeros((8, 112, 112, 3), np.uint8)
    bars = _colour_bars(figures.spacetime_figure(frames, row, 2, 0.5, 0.5, per_row=4).to_plotly_json())
    assert len(bars) == 1
    assert np.isclose(bars[0]["marker"]["cmax"], row.max()) and np.isclose(bars[0]["marker"]["cmin"], row.min())


def test_knockout_axis_names_the_whole_class():
    from gta_core.figures import knockout_figure
    from gta_core.interpret import Component, KnockoutResult

    name = "Pretending to put something next to something else entirely"
    result = KnockoutResult(Component("res3.1", "block"), 0, np.array([2.0, 0.0]), np.array([1.0, 0.5]))
    title = knockout_figure([result], name).to_plotly_json()["layout"]["xaxis"]["title"]["text"]
    assert name in title.replace("<br>", " ")


def test_dataset_figures_order_classes_by_the_gap_and_mark_reversal_pairs():
    assert figures.short_class_name("Covering something with something") == "Covering with"
    assert figures.gap_order([0.5, 0.0, None, 1.0], [1.0, 1.0, 0.5, 0.5]) == [1, 0, 3, 2]   # +1, +0.5, −0.5, no clips
    bars = figures.per_class_figure(["up", "down", "left"], [1.0, 0.0, 0.5], [0.5, 1.0, 1.0], "A", "B")
    bars = bars.to_dict()["data"]
    assert list(bars[1]["customdata"]) == ["up", "left", "down"]                     # bottom to top: largest gap on top
    pairs = {"up": "down", "down": "up", "same": "same"}
    figure = figures.confusion_figure(np.eye(3, dtype=int), ["up", "down", "same"], pairs)
    marks = [t for t in figure.to_dict()["data"] if t["type"] == "scatter"][0]
    assert sorted(zip(marks["y"], marks["x"])) == [(0, 1), (1, 0)]                  # a palindrome class is not marked
