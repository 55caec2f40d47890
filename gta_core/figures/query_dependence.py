"""Query dependence figures: the score per block and model, and the rows of a few far-apart queries (GCNet Fig. 1).

Pure builders: numbers and arrays in (gta_core.query_dependence), plotly out.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .attention import DIVERGING_SCALE, FONT, overlay


def dependence_bars_figure(table: dict[str, dict[str, tuple[float | None, float]]]) -> go.Figure:
    """Model -> "block · part" -> (JS in bits or None, variance explained): two bar panels, models side by side.

    An undefined JS (signed rows) is left out of the JS panel; analytic zeros are bars of height 0.
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=(
        "mean JS(query row, mean row), bits: 0 = query-independent",
        "variance explained by the mean row: 1 = query-independent"))
    for model, parts in table.items():
        labels = list(parts)
        js = [parts[label][0] for label in labels]
        figure.add_trace(go.Bar(x=labels, y=[np.nan if v is None else v for v in js], name=model,
                                legendgroup=model, hovertemplate="%{x}: %{y:.3f}<extra>" + model + "</extra>"),
                         row=1, col=1)
        figure.add_trace(go.Bar(x=labels, y=[parts[label][1] for label in labels], name=model,
                                legendgroup=model, showlegend=False,
                                hovertemplate="%{x}: %{y:.3f}<extra>" + model + "</extra>"), row=1, col=2)
    figure.update_yaxes(range=[0, 1], row=1, col=2)
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_layout(barmode="group", height=340, font=FONT, margin={"l": 40, "r": 10, "t": 40, "b": 80},
                         legend={"orientation": "h", "y": -0.35})
    return figure


def _as_image(row: np.ndarray) -> np.ndarray:
    """A row as a 2-D image: (T, h, w) steps side by side with a blank column between, (h, w) as is, (T,) as 1×T."""
    row = np.asarray(row, dtype=np.float32)
    if row.ndim == 1:
        return row[None, :]
    if row.ndim == 2:
        return row
    gap = np.full((row.shape[1], 1), np.nan, dtype=np.float32)
    pieces = []
    for step in row:
        pieces += [step, gap]
    return np.concatenate(pieces[:-1], axis=1)


def query_rows_figure(rows: list[np.ndarray], titles: list[str], signed: bool = False, title: str = "") -> go.Figure:
    """The rows of a few queries side by side on one colour scale (GCNet's picture: alike rows = global context).

    rows: each (T, h, w) (NL: the T steps side by side), (h, w) (SA) or (T,) (TA);
    `signed`: rows that are not distributions, on a diverging scale symmetric about 0.
    """
    if not rows:
        raise ValueError("no query rows to draw")
    images = [_as_image(row) for row in rows]
    low = min(float(np.nanmin(image)) for image in images)
    high = max(float(np.nanmax(image)) for image in images)
    if signed:
        high = max(abs(low), abs(high))
        low = -high
    high = high if high > low else low + 1e-6
    figure = make_subplots(rows=1, cols=len(images), subplot_titles=titles, horizontal_spacing=0.02)
    for index, image in enumerate(images):
        figure.add_trace(go.Heatmap(
            z=image, zmin=low, zmax=high, colorscale=DIVERGING_SCALE if signed else "Jet",
            showscale=index == 0, colorbar={"thickness": 10, "title": {"text": "signed" if signed else "weight"}},
            hovertemplate="key (%{y}, %{x}): %{z:.3g}<extra></extra>",
        ), row=1, col=index + 1)
        figure.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=index + 1)
        figure.update_xaxes(showticklabels=False, row=1, col=index + 1)
    height = 140 if images[0].shape[0] == 1 else 240
    figure.update_layout(title={"text": title, "font": {"size": 12}}, height=height, font=FONT,
                         margin={"l": 4, "r": 40, "t": 48 if title else 28, "b": 4})
    return figure


def footprint_figure(
    frame: np.ndarray, weights: np.ndarray, frame_mass: np.ndarray, nominal: tuple[int, int],
    cell_box: tuple[float, float, float, float], title: str = "",
) -> go.Figure:
    """A query's footprint (gta_core.footprint) beside its nominal cell.

    Left: `frame` (S, S, 3) with the |gradient| map `weights` (S, S) of that frame
    and the nominal cell as a white box (y0, x0, y1, x1 in pixels). Right: each
    input frame's share of the footprint, the frames the step nominally stands
    for shaded.
    """
    figure = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.08,
                           subplot_titles=("this frame: |∂ feature / ∂ pixel|", "share of the footprint per frame"))
    figure.add_trace(go.Image(z=overlay(frame, weights)), row=1, col=1)
    y0, x0, y1, x1 = cell_box
    figure.add_shape(type="rect", x0=x0 - 0.5, x1=x1 - 0.5, y0=y0 - 0.5, y1=y1 - 0.5,
                     line={"color": "white", "width": 2}, row=1, col=1)
    figure.add_trace(go.Bar(x=np.arange(len(frame_mass)), y=frame_mass, marker_color="#4c78a8", name="footprint",
                            hovertemplate="frame %{x}: %{y:.1%}<extra></extra>"), row=1, col=2)
    figure.add_vrect(x0=nominal[0] - 0.5, x1=nominal[1] - 0.5, fillcolor="#ff2b2b", opacity=0.15, line_width=0,
                     row=1, col=2)
    figure.update_xaxes(showticklabels=False, row=1, col=1)
    figure.update_yaxes(showticklabels=False, row=1, col=1)
    figure.update_xaxes(title_text="input frame (shaded: the step's nominal frames)", row=1, col=2)
    figure.update_layout(title={"text": title, "font": {"size": 12}}, height=280, font=FONT, showlegend=False,
                         margin={"l": 4, "r": 10, "t": 48, "b": 40})
    return figure
