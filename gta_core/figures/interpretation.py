"""Pure figure builders for attributions, order probes and knockouts.

Same rules as `gta_core.figures.attention` (whose overlay, grid layout and traces these
reuse): numpy arrays and the dataclasses of `gta_core.interpret` in, a
`go.Figure` out; no Streamlit, no model maths. `gta_core.export` calls the
same builders, so an exported figure is the figure the app shows.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..interpret import ORDERS, Attribution, FrameOcclusion, KnockoutResult, OrderProbe

from .attention import (
    FONT, _colour_bar, _figure, _grid_layout, _hover_trace, _image_trace, _rows_cols, _strip_height, overlay,
    temporal_weights_figure, wrap_label,
)

ORDER_COLOURS = {"original": "#1f77b4", "reversed": "#ff7f0e", "shuffled": "#2ca02c"}
POSITIVE, NEGATIVE = "#d62728", "#1f77b4"


def attribution_strip_figure(frames: np.ndarray, attribution: Attribution, per_row: int = 8) -> go.Figure:
    """Each frame with its attribution map over it; one colour scale over all frames.

    Integrated Gradients: |attribution| per pixel (summed over RGB). Grad-CAM:
    the positive part of the class activation map (the usual ReLU). Titles
    give each frame's share of the absolute attribution.
    """
    if attribution.method == "grad_cam":
        maps, label, title = attribution.positive_maps, "Grad-CAM", "Grad-CAM (last stage, positive part)"
    else:
        maps, label, title = np.abs(attribution.maps), "|IG|", "Integrated Gradients (|attribution| per pixel)"
    count = frames.shape[0]
    rows, cols = _rows_cols(count, per_row)
    size = frames.shape[1:3]
    vrange = (float(maps.min()), float(maps.max()))
    mass = attribution.mass
    data = []
    for t in range(count):
        data.append(_image_trace(overlay(frames[t], maps[t], vrange), t, f"frame {t}"))
        data.append(_hover_trace(_coarse(maps[t]), size, t, f"{label}, frame {t}"))
    titles = [f"t={t}: {mass[t]:.0%}" for t in range(count)]
    layout = _grid_layout(rows, cols, titles, v_gap=0.08 / rows, title_room=0.1 / rows)
    data.append(_colour_bar(vrange, 0, [0.0, 1.0], size, label))
    layout["title"] = {"text": title, "font": FONT, "x": 0, "xanchor": "left"}
    layout["margin"] = {"l": 4, "r": 56, "t": 28, "b": 4}
    return _figure(data, layout, _strip_height(cols, rows) + 24)


def _coarse(values: np.ndarray, cells: int = 16) -> np.ndarray:
    """A (h, w) map summed into at most cells×cells blocks, so hover data stays small for per-pixel maps."""
    height, width = values.shape
    if height <= cells and width <= cells:
        return values
    fy, fx = -(-height // cells), -(-width // cells)
    padded = np.zeros((fy * -(-height // fy), fx * -(-width // fx)), dtype=np.float32)
    padded[:height, :width] = values
    return padded.reshape(padded.shape[0] // fy, fy, padded.shape[1] // fx, fx).sum(axis=(1, 3))


def temporal_importance_figure(curves: dict[str, np.ndarray], title: str = "", signed: bool = False) -> go.Figure:
    """Per-frame curves (bars per frame, one series per method), e.g. IG mass, Grad-CAM share, occlusion drop.

    The app's temporal-weights bar chart without its query-frame band, with per-frame axis titles.
    """
    figure = temporal_weights_figure(curves, t=None, title=title)
    figure.update_layout(
        xaxis_title_text="frame", yaxis_title_text="score drop (logit)" if signed else "share",
        yaxis_rangemode="normal", yaxis_zeroline=True, margin_l=48,
    )
    return figure


def attribution_curves(ig: Attribution | None, cam: Attribution | None) -> dict[str, np.ndarray]:
    """The temporal importance curves of the attribution methods that ran: each frame's share of |attribution|."""
    curves = {}
    if ig is not None:
        curves["Integrated Gradients"] = ig.mass
    if cam is not None:
        curves["Grad-CAM"] = cam.mass
    return curves


def occlusion_figure(result: FrameOcclusion, title: str = "") -> go.Figure:
    """The logit drop of the class when frame t is replaced (positive: the frame supported the class)."""
    fill = "its neighbours" if result.fill == "neighbours" else "the clip's mean frame"
    figure = temporal_importance_figure(
        {f"frame replaced by {fill}": result.drop}, title or f"score drop, frame replaced by {fill}", signed=True
    )
    colours = [POSITIVE if d > 0 else NEGATIVE for d in result.drop]
    figure.update_traces(marker_color=colours)
    return figure


def order_probe_figure(probes: dict[str, OrderProbe], class_names: dict[str, list[str]]) -> go.Figure:
    """Per model, the probability of its original top-1 class in the original, reversed and shuffled order.

    Bars annotated with the top-1 class of each order, marked ≠ where it changed.
    """
    names = list(probes)
    data = []
    for row, order in enumerate(ORDERS):
        values = [float(probes[n].target_probabilities[row]) for n in names]
        text = []
        for n in names:
            top1 = probes[n].top1[row]
            changed = top1 != probes[n].top1[0]
            text.append(wrap_label(("≠ " if changed else "") + class_names[n][top1]))
        data.append({
            "type": "bar", "name": order, "x": names, "y": values, "text": text, "textposition": "auto",
            "marker": {"color": ORDER_COLOURS[order]},
            "hovertemplate": f"{order}<br>%{{x}}<br>p = %{{y:.4f}}<br>top-1: %{{text}}<extra></extra>",
        })
    layout = {
        "barmode": "group",
        "yaxis": {"title": {"text": "p(original top-1 class)"}, "rangemode": "tozero"},
        "xaxis": {"automargin": True},
        "showlegend": True,
        "legend": {"orientation": "h", "y": 1.12},
        "margin": {"l": 48, "r": 4, "t": 36, "b": 40},
    }
    return _figure(data, layout, 340)


def knockout_figure(results: list[KnockoutResult], class_name: str, top: int = 20) -> go.Figure:
    """The components whose knockout moves the class logit most, largest |Δ| on top (red: score falls)."""
    ranked = sorted(results, key=lambda r: abs(r.score_change), reverse=True)[:top][::-1]
    changes = [r.score_change for r in ranked]
    data = [{
        "type": "bar", "orientation": "h", "x": changes, "y": [r.component.label for r in ranked],
        "marker": {"color": [POSITIVE if c < 0 else NEGATIVE for c in changes]},
        "customdata": [r.probability_change for r in ranked],
        "hovertemplate": "%{y}<br>Δ logit %{x:.4f}<br>Δ p %{customdata:+.4f}<extra></extra>",
    }]
    layout = {
        "xaxis": {"title": {"text": wrap_label(f"Δ logit of “{class_name}”", 48)}, "zeroline": True},
        "yaxis": {"automargin": True},
        "margin": {"l": 4, "r": 4, "t": 8, "b": 56},
    }
    return _figure(data, layout, 76 + 22 * len(ranked))
