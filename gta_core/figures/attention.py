"""Pure figure builders: (numpy arrays from gta_core.views, options) -> go.Figure.

No Streamlit here and no model maths: the arrays come from `gta_core.views`;
this module only colours, lays out and annotates them, so tests call every
builder directly and read the plotly JSON.

Images. A frame with an attention overlay is an RGB image made with an OpenCV
colormap (`overlay`), shipped to the browser as a PNG data URI in a `go.Image`
(cheap to serialise). Above each image lies an invisible `go.Heatmap` on the
attention's own grid, so hovering shows the attention value of the cell under
the mouse. Image coordinates are pixels of the input crop (S×S), y downwards.

Layout. Subplot grids are laid out by hand (`_grid_layout`): make_subplots
validates a lot and costs tens of ms per figure, more than the query-point
update budget allows for a page of figures.
"""
from __future__ import annotations

import base64
import textwrap

import cv2
import numpy as np
import plotly.graph_objects as go

from ..views import KeyExtents

COLORMAP = cv2.COLORMAP_JET       # the paper's figures use a jet-like map
OVERLAY_ALPHA = 0.5               # weight of the colour map over the frame
QUERY_COLOUR = "#ff2b2b"          # the paper marks the query with a red cross
MATRIX_SCALE = "Blues"            # Fig. 5: darker is larger
SIGNED_SCALE = "RdBu"
# Signed attention rows (the dot-product NL mode): blue (negative) - white (0) - red (positive), the
# overlay's lookup table and its colour bar's plotly scale.
_DIVERGING_RGB = np.array([[33, 102, 172], [247, 247, 247], [178, 24, 43]], dtype=np.float32)
DIVERGING_LUT = np.stack(
    [np.interp(np.linspace(0, 2, 256), [0, 1, 2], _DIVERGING_RGB[:, c]) for c in (2, 1, 0)], axis=-1
).astype(np.uint8)[:, None, :]                       # (256, 1, 3) BGR, as cv2.applyColorMap takes it
DIVERGING_SCALE = [[0.0, "rgb(33,102,172)"], [0.5, "rgb(247,247,247)"], [1.0, "rgb(178,24,43)"]]
FONT = dict(size=11)


# --------------------------------------------------------------------------- images


def overlay(
    frame: np.ndarray,
    attention: np.ndarray,
    vrange: tuple[float, float] | None = None,
    alpha: float = OVERLAY_ALPHA,
    extents: KeyExtents | None = None,
    signed: bool = False,
) -> np.ndarray:
    """(S, S, 3) uint8 RGB frame + (h, w) attention -> (S, S, 3) uint8 RGB overlay.

    `signed` (rows that are not distributions): the diverging `DIVERGING_LUT`
    over a range symmetric about 0 (default ±max |value|), so 0 is white.

    The map is scaled min-max to [0, 255] over `vrange` (default: its own
    min and max, so a nearly flat map still shows where it peaks; the hover
    gives the raw values), coloured with `COLORMAP` and blended. With
    `extents` (pooled key cells, `gta_core.views.key_extents`) each cell is
    painted over exactly the pixels it pools, and pixels no key covers stay
    uncoloured; without, the map covers the frame evenly (bilinear).
    """
    height, width = frame.shape[:2]
    attention = np.asarray(attention, dtype=np.float32)
    low, high = (float(attention.min()), float(attention.max())) if vrange is None else vrange
    if signed and vrange is None:
        high = max(abs(low), abs(high))
        low = -high
    span = high - low
    scaled = np.clip((attention - low) / span, 0.0, 1.0) if span > 0 else np.zeros_like(attention)
    if extents is None:
        heat = cv2.resize((scaled * 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)
        covered = np.ones((height, width), dtype=bool)
    else:
        # Key cells tile a block from the crop's top-left corner (pooling windows are contiguous):
        # repeat each cell's value over its pixel rows and columns.
        heat, covered = np.zeros((height, width), np.uint8), np.zeros((height, width), dtype=bool)
        rows, cols = (_pixel_edges(axis, size) for axis, size in zip(extents, (height, width)))
        cells = np.rint(scaled * 255).astype(np.uint8)
        cells = np.repeat(np.repeat(cells, [b - a for a, b in rows], 0), [b - a for a, b in cols], 1)
        (top, _), (left, _) = rows[0], cols[0]
        heat[top:top + cells.shape[0], left:left + cells.shape[1]] = cells
        covered[top:top + cells.shape[0], left:left + cells.shape[1]] = True
    coloured = cv2.cvtColor(cv2.applyColorMap(heat, DIVERGING_LUT if signed else COLORMAP), cv2.COLOR_BGR2RGB)
    blended = cv2.addWeighted(np.ascontiguousarray(frame), 1.0 - alpha, coloured, alpha, 0.0)
    return np.where(covered[..., None], blended, frame).astype(np.uint8)


def _pixel_edges(axis: tuple[tuple[float, float], ...], size: int) -> list[tuple[int, int]]:
    """Fractional [start, stop) extents -> pixel ranges of an axis of `size` pixels."""
    return [(int(round(a * size)), int(round(b * size))) for a, b in axis]


def png_uri(rgb: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode an image as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _axis_names(index: int) -> tuple[str, str]:
    """Trace axis refs and layout keys of subplot `index` (0-based)."""
    suffix = "" if index == 0 else str(index + 1)
    return f"x{suffix}", f"y{suffix}"


def _domain(low: float, high: float) -> list[float]:
    return [round(min(max(low, 0.0), 1.0), 6), round(min(max(high, 0.0), 1.0), 6)]


def _grid_layout(
    rows: int,
    cols: int,
    titles: list[str] | None = None,
    images: list[bool] | None = None,
    h_gap: float = 0.01,
    v_gap: float = 0.06,
    title_room: float = 0.0,
) -> dict:
    """A layout dict with rows×cols subplots (row-major); image cells get pixel axes (y down)."""
    layout: dict = {"annotations": []}
    width = (1.0 - h_gap * (cols - 1)) / cols
    height = (1.0 - title_room - v_gap * (rows - 1)) / rows
    for index in range(rows * cols):
        row, col = divmod(index, cols)
        x_ref, y_ref = _axis_names(index)
        x0 = col * (width + h_gap)
        y1 = 1.0 - title_room - row * (height + v_gap)
        xaxis = {"domain": _domain(x0, x0 + width), "anchor": y_ref}
        yaxis = {"domain": _domain(y1 - height, y1), "anchor": x_ref}
        if images is None or images[index]:
            xaxis.update(visible=False, constrain="domain")
            yaxis.update(visible=False, autorange="reversed", scaleanchor=x_ref, constrain="domain")
        layout["xaxis" + x_ref[1:]] = xaxis
        layout["yaxis" + y_ref[1:]] = yaxis
        if titles and index < len(titles) and titles[index]:
            layout["annotations"].append(
                {
                    "text": titles[index], "x": x0 + width / 2, "y": y1, "xref": "paper", "yref": "paper",
                    "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": FONT,
                }
            )
    return layout


def _image_trace(rgb: np.ndarray, index: int, name: str = "") -> dict:
    x_ref, y_ref = _axis_names(index)
    return {"type": "image", "source": png_uri(rgb), "xaxis": x_ref, "yaxis": y_ref, "hoverinfo": "skip", "name": name}


def _hover_trace(
    values: np.ndarray, size: tuple[int, int], index: int, label: str, extents: KeyExtents | None = None
) -> dict:
    """An invisible heatmap over an S×S image: hover shows the (h, w) values under the mouse.

    Cells sit where `extents` puts them (pooled key cells), else evenly.
    """
    x_ref, y_ref = _axis_names(index)
    rows, cols = values.shape
    if extents is None:
        extents = tuple(tuple((k / n, (k + 1) / n) for k in range(n)) for n in (rows, cols))
    # Cell edges in pixel coordinates (image pixel k spans [k - 0.5, k + 0.5)).
    y_edges, x_edges = ([a * n - 0.5 for a, _ in axis] + [axis[-1][1] * n - 0.5] for axis, n in zip(extents, size))
    return {
        "type": "heatmap", "z": np.asarray(values, dtype=np.float32), "x": x_edges, "y": y_edges,
        "opacity": 0.0, "showscale": False, "xaxis": x_ref, "yaxis": y_ref,
        "hovertemplate": f"{label}<br>key cell (%{{customdata}})<br>weight %{{z:.4f}}<extra></extra>",
        "customdata": [[f"{r}, {c}" for c in range(cols)] for r in range(rows)],
        "name": label,
    }


def _query_marker(fy: float, fx: float, size: tuple[int, int], index: int) -> dict:
    x_ref, y_ref = _axis_names(index)
    return {
        "type": "scatter", "x": [fx * size[1] - 0.5], "y": [fy * size[0] - 0.5], "mode": "markers",
        "marker": {"symbol": "x-thin", "size": 14, "line": {"width": 3, "color": QUERY_COLOUR}},
        "xaxis": x_ref, "yaxis": y_ref, "hoverinfo": "skip", "showlegend": False, "name": "query",
    }


def _colour_bar(
    vrange: tuple[float, float], index: int, y_domain: list[float], size: tuple[int, int], title: str = "",
    signed: bool = False,
) -> dict:
    """The overlays' colour key: a transparent point at the centre of subplot `index`'s (S, S) image whose
    colour bar is jet (the overlay's `COLORMAP`) from vrange[0] to vrange[1], beside the rows spanning
    `y_domain` (paper coordinates). plotly draws no colour bar for a trace without a point, hence the
    point; at the centre, it does not widen the image's axes."""
    x_ref, y_ref = _axis_names(index)
    low, high = float(vrange[0]), float(vrange[1])
    high = high if high > low else low + 1e-6          # a flat map: a bar that says so, not a division by 0
    return {
        "type": "scatter", "x": [size[1] / 2], "y": [size[0] / 2], "mode": "markers",
        "hoverinfo": "skip", "showlegend": False,
        "xaxis": x_ref, "yaxis": y_ref, "name": title or "colour scale",
        "marker": {
            "color": [low], "colorscale": DIVERGING_SCALE if signed else "Jet", "cmin": low, "cmax": high, "showscale": True, "opacity": 0,
            "colorbar": {
                "x": 1.0, "xref": "paper", "xanchor": "left",
                "y": sum(y_domain) / 2, "len": max(y_domain[1] - y_domain[0], 0.05), "yanchor": "middle",
                "thickness": 10, "tickfont": {"size": 9}, "exponentformat": "e",
                "title": {"text": title, "side": "right", "font": {"size": 9}},
            },
        },
    }


LABEL_WIDTH = 22    # characters per line of a class name on a bar chart's axis (longer names wrap)


def wrap_label(text: str, width: int = LABEL_WIDTH) -> str:
    """A class name broken into lines of at most `width` characters (plotly's <br>), so a narrow column
    shows it whole instead of cutting it at the left edge."""
    return "<br>".join(textwrap.wrap(text, width)) or text


def _figure(data: list[dict], layout: dict, height: int) -> go.Figure:
    layout.setdefault("margin", {"l": 4, "r": 4, "t": 24, "b": 4})
    layout.setdefault("showlegend", False)
    layout["height"] = height
    layout.setdefault("hovermode", "closest")
    return go.Figure(data=data, layout=layout)


def _strip_height(columns: int, rows: int = 1) -> int:
    # Square cells in a ~600 px wide column, plus room for titles.
    cell = max(60, min(150, 600 // max(columns, 1)))
    return rows * (cell + 26) + 10


# --------------------------------------------------------------------------- predictions


def _rows_cols(count: int, per_row: int) -> tuple[int, int]:
    cols = max(1, min(count, per_row))
    return -(-count // cols), cols


def frame_strip_figure(frames: np.ndarray, frame_indices: list[int], per_row: int = 8) -> go.Figure:
    """The T sampled frames (T, S, S, 3), `per_row` to a row, titled with their decoded frame index."""
    count = frames.shape[0]
    rows, cols = _rows_cols(count, per_row)
    titles = [f"t={t} (#{i})" for t, i in enumerate(frame_indices)]
    data = [_image_trace(frames[t], t, f"frame {t}") for t in range(count)]
    layout = _grid_layout(rows, cols, titles, v_gap=0.08 / rows, title_room=0.1 / rows)
    return _figure(data, layout, _strip_height(cols, rows))


def topk_figure(entries: list[tuple[int, str, float]], truth: str | None = None) -> go.Figure:
    """Horizontal bars of the top-k classes, best on top; the true class, if among them, in green."""
    names = [name for _, name, _ in entries][::-1]
    probs = [p for _, _, p in entries][::-1]
    colours = ["#2ca02c" if truth is not None and name == truth else "#1f77b4" for name in names]
    labels = [wrap_label(name) for name in names]
    data = [{
        "type": "bar", "orientation": "h", "x": probs, "y": labels, "marker": {"color": colours},
        "text": [f"{p:.1%}" for p in probs], "textposition": "auto", "customdata": names,
        "hovertemplate": "%{customdata}<br>p = %{x:.4f}<extra></extra>",
    }]
    layout = {
        "xaxis": {"range": [0, 1], "title": {"text": "probability"}, "tickformat": ".0%"},
        "yaxis": {"automargin": True},
        "margin": {"l": 4, "r": 4, "t": 8, "b": 36},
    }
    extra_lines = sum(label.count("<br>") for label in labels)
    return _figure(data, layout, 60 + 28 * len(entries) + 12 * extra_lines)


# --------------------------------------------------------------------------- query point


def picker_figure(frame: np.ndarray, fy: float, fx: float, steps: int = 28,
                  boxes: list[tuple[str, tuple[float, float, float, float]]] = ()) -> go.Figure:
    """The query frame with a grid of clickable points; clicking one picks (fy, fx).

    The points sit at the centres of a steps×steps grid over the frame (pixel
    coordinates); the current query is a red cross. boxes: other models' crops
    (name, (top, left, bottom, right) as fractions of this frame), drawn as
    dashed outlines (gta_core.views.box_in_crop).
    """
    size = frame.shape[:2]
    centres = (np.arange(steps) + 0.5) / steps
    gy, gx = np.meshgrid(centres, centres, indexing="ij")
    picker = {
        "type": "scatter", "mode": "markers", "x": (gx.ravel() * size[1] - 0.5), "y": (gy.ravel() * size[0] - 0.5),
        "marker": {"size": max(4, 300 // steps), "symbol": "square", "color": "rgba(255,255,255,0.02)"},
        "hovertemplate": "click to query this point<extra></extra>",
        "name": "picker", "xaxis": "x", "yaxis": "y",
    }
    data = [_image_trace(frame, 0, "query frame"), picker, _query_marker(fy, fx, size, 0)]
    layout = _grid_layout(1, 1)
    layout["shapes"] = [
        {"type": "rect", "xref": "x", "yref": "y", "x0": left * size[1] - 0.5, "x1": right * size[1] - 0.5,
         "y0": top * size[0] - 0.5, "y1": bottom * size[0] - 0.5, "line": {"color": "#ffd400", "dash": "dash"},
         "name": name}
        for name, (top, left, bottom, right) in boxes
    ]
    layout["annotations"] = [
        {"x": max(0.0, left) * size[1], "y": max(0.0, top) * size[0], "xref": "x", "yref": "y", "text": name,
         "showarrow": False, "xanchor": "left", "yanchor": "top", "font": {"color": "#ffd400", "size": 10}}
        for name, (top, left, _, _) in boxes
    ]
    layout["dragmode"] = False
    layout["margin"] = {"l": 0, "r": 0, "t": 0, "b": 0}
    return _figure(data, layout, 300)


def spacetime_figure(
    frames: np.ndarray, row: np.ndarray, t: int, fy: float, fx: float, per_row: int = 8,
    extents: KeyExtents | None = None, step_names: list[str] | None = None, signed: bool = False,
) -> go.Figure:
    """NL (Fig. 1): the query's attention over all T time steps, one colour scale for all.

    frames (T, S, S, 3), one image per time step; row (T, h, w), which sums to 1
    over all T·h·w keys; t the query's step. Titles give each step's share of the
    attention; step_names label the steps of a 3D block (default "t=k").
    `signed` (dot-product NL: θφᵀ/N, no softmax): the row is not a distribution;
    a diverging scale symmetric about 0, and titles give each step's signed sum.
    """
    count = frames.shape[0]
    names = step_names or [f"t={k}" for k in range(count)]
    rows, cols = _rows_cols(count, per_row)
    size = frames.shape[1:3]
    bound = float(np.abs(row).max())
    vrange = (-bound, bound) if signed else (float(row.min()), float(row.max()))
    data = []
    for k in range(count):
        data.append(_image_trace(overlay(frames[k], row[k], vrange, extents=extents, signed=signed), k, names[k]))
        data.append(_hover_trace(row[k], size, k, names[k], extents))
    data.append(_query_marker(fy, fx, size, t))
    key = "signed weight (not a distribution)" if signed else "weight"
    data.append(_colour_bar(vrange, 0, [0.0, 1.0], size, key, signed=signed))
    share = (lambda k: f"Σ {row[k].sum():+.3g}") if signed else (lambda k: f"{row[k].sum():.0%}")
    titles = [f"{names[k]}: {share(k)}" + (" (query)" if k == t else "") for k in range(count)]
    layout = _grid_layout(rows, cols, titles, v_gap=0.08 / rows, title_room=0.1 / rows)
    layout["margin"] = {"l": 4, "r": 56, "t": 24, "b": 4}
    return _figure(data, layout, _strip_height(cols, rows))


def spatial_figure(
    frame: np.ndarray, spatial: np.ndarray, fy: float, fx: float, title: str = "", extents: KeyExtents | None = None
) -> go.Figure:
    """SA (Fig. 1, 3): the query pixel's attention inside its own frame, (h, w) over (S, S, 3)."""
    size = frame.shape[:2]
    data = [
        _image_trace(overlay(frame, spatial, extents=extents), 0, "spatial"),
        _hover_trace(spatial, size, 0, "spatial attention", extents),
        _query_marker(fy, fx, size, 0),
        _colour_bar((float(spatial.min()), float(spatial.max())), 0, [0.0, 1.0], size, "weight"),
    ]
    layout = _grid_layout(1, 1, [title], title_room=0.08 if title else 0.0)
    layout["margin"] = {"l": 4, "r": 56, "t": 24, "b": 4}
    return _figure(data, layout, 280)


def temporal_weights_figure(
    series: dict[str, np.ndarray], t: int | None, title: str = "", step_names: list[str] | None = None
) -> go.Figure:
    """TA (one series: softmax weights) or GTA (rows of mean |M̂|) of query step t over the T steps.

    The query step is shaded; t=None draws no band (per-frame charts that have no query frame).
    step_names label a 3D block's time steps (e.g. "3: f12–15"); default: frame indices.
    """
    data = []
    for name, values in series.items():
        values = np.asarray(values, dtype=np.float32)
        data.append({
            "type": "bar", "name": name, "x": list(range(len(values))), "y": values,
            "hovertemplate": f"{name}<br>%{{x}}<br>%{{y:.4f}}<extra></extra>",
        })
    layout = {
        "barmode": "group",
        "xaxis": _step_ticks(step_names, "key frame" if step_names is None else "key time step"),
        "yaxis": {"title": {"text": "weight"}, "rangemode": "tozero"},
        "shapes": [] if t is None else [{
            "type": "rect", "xref": "x", "yref": "paper", "x0": t - 0.5, "x1": t + 0.5, "y0": 0, "y1": 1,
            "line": {"width": 0}, "fillcolor": "rgba(255,43,43,0.12)", "layer": "below",
        }],
        "title": {"text": title, "font": FONT} if title else None,
        "showlegend": len(series) > 1,
        "legend": {"orientation": "h", "y": -0.35},
        "margin": {"l": 40, "r": 4, "t": 28 if title else 8, "b": 40},
    }
    return _figure(data, layout, 240)


def swapped_figure(
    frame: np.ndarray,
    original: tuple[np.ndarray, np.ndarray],
    swapped: tuple[np.ndarray, np.ndarray],
    t: int,
    fy: float,
    fx: float,
    extents: KeyExtents | None = None,
    step_names: list[str] | None = None,
) -> go.Figure:
    """Fig. 7: rows = DNL, swapped DNL; columns = spatial map in step t, temporal weights of step t.

    original / swapped: (spatial (h, w), temporal (T,)) for the same query.
    """
    size = frame.shape[:2]
    layout = _grid_layout(
        2, 2, ["DNL: spatial", "DNL: temporal", "swapped DNL: spatial", "swapped DNL: temporal"],
        images=[True, False, True, False], h_gap=0.08, v_gap=0.2, title_room=0.05,
    )
    data = []
    top = max(float(original[1].max()), float(swapped[1].max()), 1e-6)
    for row, (spatial, temporal) in enumerate((original, swapped)):
        image_index, bar_index = 2 * row, 2 * row + 1
        data.append(_image_trace(overlay(frame, spatial, extents=extents), image_index))
        data.append(_hover_trace(spatial, size, image_index, "spatial attention", extents))
        data.append(_query_marker(fy, fx, size, image_index))
        x_ref, y_ref = _axis_names(bar_index)
        colours = [QUERY_COLOUR if k == t else "#1f77b4" for k in range(len(temporal))]
        data.append({
            "type": "bar", "x": list(range(len(temporal))), "y": np.asarray(temporal, dtype=np.float32),
            "marker": {"color": colours}, "xaxis": x_ref, "yaxis": y_ref,
            "hovertemplate": "frame %{x}<br>%{y:.4f}<extra></extra>",
        })
        layout["xaxis" + x_ref[1:]].update(_step_ticks(step_names, "key frame" if step_names is None else "key time step"))
        layout["yaxis" + y_ref[1:]].update(range=[0, top * 1.05])
    return _figure(data, layout, 560)


def _step_ticks(step_names: list[str] | None, title: str) -> dict:
    """An axis with one tick per time step, labelled by `step_names` when given."""
    axis = {"title": {"text": title}, "dtick": 1}
    if step_names is not None:
        axis.update(tickvals=list(range(len(step_names))), ticktext=step_names, tickangle=-45 if len(step_names) > 8 else 0)
    return axis


# --------------------------------------------------------------------------- temporal matrices (Fig. 5)


def _frame_axes(
    layout: dict, index: int, frames: int, x_title: bool = True, y_title: bool = True, short: bool = False,
    step_names: list[str] | None = None,
) -> None:
    """Show subplot `index`'s axes as a T×T matrix's: one tick per frame, query (output) frame down the
    rows from 0 at the top, key (input) frame along the columns (paper Fig. 5). short: titles without
    "(input)" / "(output)", for small cells."""
    x_ref, y_ref = _axis_names(index)
    ticks = {"visible": True, "tickvals": list(range(frames)), "showticklabels": True, "tickfont": {"size": 9}}
    unit = "frame"
    if step_names is not None:   # a 3D block: time steps, each standing for several frames
        ticks["ticktext"], unit = step_names, "step"
    x_text, y_text = (f"key {unit}", f"query {unit}") if short else (f"key {unit} (input)", f"query {unit} (output)")
    font = {"size": 10 if short else 12}
    layout["xaxis" + x_ref[1:]].update(ticks, title={"text": x_text if x_title else "", "font": font, "standoff": 2})
    layout["yaxis" + y_ref[1:]].update(
        ticks, autorange="reversed", title={"text": y_text if y_title else "", "font": font, "standoff": 2}
    )


def _matrix_trace(matrix: np.ndarray, index: int, scale: str, zmin: float, zmax: float, label: str, colorbar: bool) -> dict:
    x_ref, y_ref = _axis_names(index)
    return {
        "type": "heatmap", "z": np.asarray(matrix, dtype=np.float32), "colorscale": scale, "zmin": zmin, "zmax": zmax,
        "xaxis": x_ref, "yaxis": y_ref, "showscale": colorbar, "name": label,
        "colorbar": {"x": 1.0, "xref": "paper", "xanchor": "left", "thickness": 12},   # right of the whole grid
        "hovertemplate": f"{label}<br>out frame %{{y}} ← in frame %{{x}}<br>%{{z:.4f}}<extra></extra>",
    }


def matrix_figure(
    matrix: np.ndarray, title: str = "", signed: bool = False, zrange: tuple[float, float] | None = None,
    step_names: list[str] | None = None,
) -> go.Figure:
    """One (T, T) matrix [output frame, input frame], row 0 on top, as in the paper's Fig. 5.

    zrange: a fixed colour range (e.g. shared by two matrices drawn side by side).
    """
    matrix = np.asarray(matrix, dtype=np.float32)
    if zrange is not None:
        scale, (zmin, zmax) = SIGNED_SCALE if signed else MATRIX_SCALE, zrange
    elif signed:
        bound = float(np.abs(matrix).max()) or 1.0
        scale, zmin, zmax = SIGNED_SCALE, -bound, bound
    else:
        # From the matrix's min to its max: TA weights of a flat clip sit near 1/T and would be one colour.
        zmin, zmax = float(matrix.min()), float(matrix.max())
        scale, zmax = MATRIX_SCALE, zmax if zmax > zmin else zmin + 1e-6
    layout = _grid_layout(1, 1, [title] if title else None, title_room=0.08 if title else 0.0)
    _frame_axes(layout, 0, matrix.shape[0], step_names=step_names)
    layout["margin"] = {"l": 48, "r": 4, "t": 8, "b": 44}
    return _figure([_matrix_trace(matrix, 0, scale, zmin, zmax, title or "matrix", True)], layout, 320)


def head_grid_figure(matrices: np.ndarray, title: str = "", step_names: list[str] | None = None) -> go.Figure:
    """(G, N_h, T, T) learned matrices as a group × head grid, one signed colour scale."""
    groups, heads = matrices.shape[:2]
    bound = float(np.abs(matrices).max()) or 1.0
    titles = [f"g{g} h{k}" for g in range(groups) for k in range(heads)]
    layout = _grid_layout(groups, heads, titles, h_gap=0.05, v_gap=0.35 / groups, title_room=0.0)
    data = [
        _matrix_trace(matrices[g, k], g * heads + k, SIGNED_SCALE, -bound, bound, f"{title} g{g} h{k}", g == k == 0)
        for g in range(groups)
        for k in range(heads)
    ]
    for index in range(groups * heads):   # axis titles once: on the bottom row and the left column
        _frame_axes(
            layout, index, matrices.shape[-1], x_title=index // heads == groups - 1, y_title=index % heads == 0,
            short=True, step_names=step_names,
        )
    layout["margin"] = {"l": 52, "r": 4, "t": 48 if title else 20, "b": 44}
    if title:
        layout["title"] = {"text": title, "font": FONT}
    return _figure(data, layout, 84 + groups * 110)


def difference_figure(
    a: np.ndarray, b: np.ndarray, title: str = "A − B", step_names: list[str] | None = None
) -> go.Figure:
    """(T, T) difference of two matrices on a signed scale centred at 0."""
    if a.shape != b.shape:
        raise ValueError(f"cannot compare matrices of shapes {a.shape} and {b.shape}")
    return matrix_figure(np.asarray(a, np.float32) - np.asarray(b, np.float32), title, signed=True, step_names=step_names)


# --------------------------------------------------------------------------- regions (Fig. 3, 6)


def regions_figure(
    frames: np.ndarray,
    maps: np.ndarray,
    regions: list[int],
    strength: np.ndarray | None = None,
    *,
    shared_scale: bool = False,
    cell: int | None = None,
    step_names: list[str] | None = None,
) -> go.Figure:
    """Rows = the chosen regions (in the given order, each once), columns = time steps (frames in 2D).

    frames (T, S, S, 3); maps (T, K, H, W), each region map summing to 1 over H·W.
    Each row has one colour scale over its frames (so a region's change over time
    is visible) and its own colour bar, so a flat map and a peaked one do not look
    alike; shared_scale: one scale and one bar for all rows. cell: pixels per frame.
    """
    regions = list(dict.fromkeys(int(r) for r in regions))
    count = frames.shape[0]
    size = frames.shape[1:3]
    chosen = maps[:, regions]
    shared = (float(chosen.min()), float(chosen.max()))
    rows = len(regions)
    titles = step_names or [f"t={k}" for k in range(count)]
    layout = _grid_layout(rows, count, titles, v_gap=0.1 / rows, title_room=0.12 / rows)
    data = []
    for r, region in enumerate(regions):
        vrange = shared if shared_scale else (float(maps[:, region].min()), float(maps[:, region].max()))
        for k in range(count):
            index = r * count + k
            data.append(_image_trace(overlay(frames[k], maps[k, region], vrange), index))
            data.append(_hover_trace(maps[k, region], size, index, f"region {region}, {titles[k]}"))
        y_domain = layout[f"yaxis{'' if r * count == 0 else r * count + 1}"]["domain"]
        if not shared_scale:
            data.append(_colour_bar(vrange, r * count, y_domain, size, "weight"))
        label = f"region {region}" + (f"<br>{strength[region]:.3f}" if strength is not None else "")
        layout["annotations"].append({   # row labels on the left
            "text": label, "x": 0, "y": sum(y_domain) / 2, "xref": "paper", "yref": "paper",
            "xanchor": "right", "yanchor": "middle", "showarrow": False, "font": FONT,
        })
    if shared_scale:
        data.append(_colour_bar(shared, 0, [0.0, 1.0], size, "weight (all rows)"))
    layout["margin"] = {"l": 64, "r": 64, "t": 8, "b": 4}
    height = rows * (cell + 26) + 10 if cell else _strip_height(count, rows)
    return _figure(data, layout, height)
