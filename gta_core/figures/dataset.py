"""Figures of a compare report (gta_core.disagreement): many clips at once.

Per-class accuracy of two checkpoints sorted by their gap, confusion matrices
with the time-reversal pairs marked, and the TA weights averaged over the clips
of each class (beside GTA's one global M̂, drawn by `attention.matrix_figure`).
"""
from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go

from .attention import FONT, MATRIX_SCALE, _figure, _frame_axes, _grid_layout, _matrix_trace, wrap_label

COLOUR_A, COLOUR_B = "#9e9e9e", "#1f77b4"
PAIR_COLOUR = "#d62728"          # cells (class, its time-reversal pair) of a confusion matrix


def short_class_name(name: str) -> str:
    """A class name without its "something"s: "Covering something with something" -> "Covering with"."""
    return re.sub(r"\s+", " ", re.sub(r"\bsomething\b", "", name)).strip() or name


def gap_order(acc_a: list[float | None], acc_b: list[float | None]) -> list[int]:
    """Class indices by acc(B) − acc(A), largest first; classes without clips last."""
    def gap(i: int) -> float:
        a, b = acc_a[i], acc_b[i]
        return -np.inf if a is None or b is None else b - a
    return sorted(range(len(acc_a)), key=lambda i: -gap(i))


def per_class_figure(
    class_names: list[str], acc_a: list[float | None], acc_b: list[float | None], name_a: str, name_b: str
) -> go.Figure:
    """Per-class accuracy of A and B side by side, the class B gains most on at the top."""
    order = gap_order(acc_a, acc_b)[::-1]             # plotly draws the first bar at the bottom
    labels = [wrap_label(short_class_name(class_names[i]), 30) for i in order]
    data = []
    for name, values, colour in ((name_a, acc_a, COLOUR_A), (name_b, acc_b, COLOUR_B)):
        shown = [values[i] if values[i] is not None else 0.0 for i in order]
        data.append({
            "type": "bar", "orientation": "h", "name": name, "x": shown, "y": labels, "marker": {"color": colour},
            "customdata": [class_names[i] for i in order],
            "hovertemplate": f"{name}<br>%{{customdata}}<br>accuracy %{{x:.1%}}<extra></extra>",
        })
    gaps = [(acc_b[i] or 0.0) - (acc_a[i] or 0.0) for i in order]
    layout = {
        "barmode": "group", "showlegend": True, "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom"},
        "xaxis": {"range": [0, 1.12], "tickformat": ".0%", "title": {"text": "accuracy", "font": FONT}},
        "yaxis": {"automargin": True, "tickfont": {"size": 10}},
        "annotations": [
            {"x": 1.01, "y": label, "xref": "x", "yref": "y", "text": f"{100 * g:+.0f}", "showarrow": False,
             "xanchor": "left", "font": {"size": 9, "color": COLOUR_B if g > 0 else "#555"}}
            for label, g in zip(labels, gaps)
        ],
        "margin": {"l": 4, "r": 4, "t": 28, "b": 36},
    }
    return _figure(data, layout, 80 + 34 * len(order))


def _pair_marks(class_names: list[str], pairs: dict[str, str] | None) -> dict | None:
    """Open red squares on the cells (true class, predicted = its time-reversal pair)."""
    if not pairs:
        return None
    index = {name: i for i, name in enumerate(class_names)}
    cells = [(index[a], index[b]) for a, b in pairs.items() if a in index and b in index and a != b]
    return {
        "type": "scatter", "mode": "markers", "x": [c for _, c in cells], "y": [r for r, _ in cells],
        "name": "time-reversal pair", "showlegend": True, "hoverinfo": "skip",
        "marker": {"symbol": "square-open", "size": 14, "color": PAIR_COLOUR, "line": {"width": 2}},
    }


def confusion_figure(
    matrix: np.ndarray, class_names: list[str], pairs: dict[str, str] | None = None, title: str = ""
) -> go.Figure:
    """Counts, rows the true class and columns the predicted one; red squares mark (class, its reversal)."""
    matrix = np.asarray(matrix)
    count = len(class_names)
    ticks = list(range(count))
    hover = [[f"true {class_names[r]}<br>predicted {class_names[c]}" for c in ticks] for r in ticks]
    data = [{
        "type": "heatmap", "z": matrix, "x": ticks, "y": ticks, "colorscale": MATRIX_SCALE, "zmin": 0,
        "showscale": False, "texttemplate": "%{z}", "textfont": {"size": 9}, "customdata": hover, "name": title,
        "hovertemplate": "%{customdata}<br>%{z} clips<extra></extra>",
    }]
    marks = _pair_marks(class_names, pairs)
    if marks is not None:
        data.append(marks)
    layout = {
        # Fixed ranges: the markers' size would otherwise pad the axes with an empty row and column.
        "xaxis": {"tickvals": ticks, "title": {"text": "predicted class", "font": FONT}, "constrain": "domain",
                  "tickfont": {"size": 9}, "range": [-0.5, count - 0.5], "showgrid": False},
        "yaxis": {"tickvals": ticks, "ticktext": [f"{short_class_name(n)} · {i}" for i, n in enumerate(class_names)],
                  "range": [count - 0.5, -0.5], "scaleanchor": "x", "constrain": "domain", "tickfont": {"size": 9},
                  "automargin": True, "showgrid": False},
        "showlegend": marks is not None, "legend": {"orientation": "h", "y": -0.12, "yanchor": "top"},
        "margin": {"l": 4, "r": 4, "t": 28, "b": 40},
    }
    if title:
        layout["title"] = {"text": title, "font": FONT}
    return _figure(data, layout, 140 + 26 * count)


def class_matrices_figure(per_class: dict[str, np.ndarray], title: str = "", per_row: int = 5,
                          steps: bool = False) -> go.Figure:
    """One (T, T) matrix per class in a grid, on one colour scale (min to max over all classes).

    steps: the block's time steps are not frames (a 3D block, e.g. SlowFast's Slow pathway): axes say "step".
    """
    names = list(per_class)
    matrices = [np.asarray(per_class[n], dtype=np.float32) for n in names]
    rows, cols = -(-len(names) // per_row), min(per_row, len(names))
    low = float(min(m.min() for m in matrices))
    high = max(float(max(m.max() for m in matrices)), low + 1e-6)
    titles = [wrap_label(short_class_name(n), 24) for n in names]
    layout = _grid_layout(rows, cols, titles, h_gap=0.04, v_gap=0.5 / rows, title_room=0.06 / rows)
    data = [_matrix_trace(m, i, MATRIX_SCALE, low, high, names[i], i == 0) for i, m in enumerate(matrices)]
    for index in range(len(names)):
        size = matrices[index].shape[-1]
        _frame_axes(layout, index, size, x_title=index // cols == rows - 1, y_title=index % cols == 0, short=True,
                    step_names=[str(step) for step in range(size)] if steps else None)
    layout["margin"] = {"l": 52, "r": 4, "t": 48 if title else 24, "b": 44}
    if title:
        layout["title"] = {"text": title, "font": FONT}
    return _figure(data, layout, 80 + rows * 190)
