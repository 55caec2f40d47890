"""`python -m gta_core export`: every view's figures for a set of videos, as files.

    python -m gta_core export CHECKPOINT [CHECKPOINT ...] VIDEO_OR_FOLDER --out DIR
        [--ig-steps 32] [--internal-batch-size 8] [--knockout all|blocks|none]
        [--plotlyjs inline|shared] [--probe] [--no-progress]

writes, per video, DIR/<video stem>/ with

    figures.html           every view's figures, the models side by side, one standalone page
    <view>/<figure>.png    every figure as a PNG (views: predictions, query, temporal, regions,
                           swapped, attributions, order, knockout)
    attention.mp4          the attention overlays frame by frame, one column per model (H.264)
    summary.json           predictions, order probe, IG completeness, knockout scores as numbers

The figures are built by the pure builders the app uses (`gta_core.figures`)
from `gta_core.views` / `gta_core.interpret` arrays, so an exported figure is the figure the app shows. Block views
(query, temporal, regions, swapped) are drawn for every block, at the app's
default query: the middle frame, the centre of the crop.

PNG. Plotly's own PNG export (kaleido) drives a Chrome/Chromium, which a
researcher's machine may not have and which costs seconds per browser start.
PNGs are instead drawn here with matplotlib (Agg, no display, no browser) by
`render_png`, a renderer for the plotly subset the app's builders use
(image, heatmap, bar and scatter traces on a grid of axes, annotations, rect
shapes). It reads the same go.Figure, so the PNG has the same images, values,
colour scales, titles and layout; fonts and tick placement are matplotlib's.
A figure with another trace type raises `ExportError` naming it.
Size: layout.width (plotly's default 700 when unset) × layout.height pixels.

HTML. `--plotlyjs inline` (default) embeds plotly.js (~4.8 MB) in every
page: each page opens offline on its own. `shared` writes DIR/plotly.min.js
once and the pages load it by relative path (the folder must stay together).
No page loads anything from the network.

MP4. One frame per sampled frame t, one column per model: on top the
model's attention at the centre of frame t in its first block (NL: the
query's space-time row on frame t itself; DNL/GTA/TAPE: SA's map inside
frame t; models without blocks: the plain frame), below it the positive
Grad-CAM map of frame t. Written with PyAV, libx264 (mpeg4 when the av
wheel lacks it), yuv420p, 2 fps.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .capture import capture
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .video import ClipSpec, VideoError, read_clip

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")
DEFAULT_WIDTH, DEFAULT_HEIGHT = 700, 450      # plotly's defaults for an unset layout size
PLOTLY_JS = "plotly.min.js"
VIEWS = ("predictions", "query", "temporal", "regions", "swapped", "attributions", "order", "knockout")
VIEW_TITLES = {
    "predictions": "Predictions", "query": "Query point", "temporal": "Temporal attention", "regions": "Regions",
    "swapped": "Swapped attention", "attributions": "Attributions", "order": "Order probe", "knockout": "Knockout",
}
MP4_FPS = 2


class ExportError(Exception):
    """An export that cannot be done; the message says why."""


@dataclass
class ExportOptions:
    ig_steps: int = 32
    internal_batch_size: int = 8
    knockout: str = "all"              # "all" components, "blocks" (whole blocks only) or "none"
    plotlyjs: str = "inline"           # "inline" or "shared"
    top_k: int = 5
    seed: int = 0                      # the order probe's shuffle
    device: str = "cpu"
    untrusted: bool = False            # probe videos in a child process first
    decoder: str = "auto"

    def __post_init__(self) -> None:
        if self.knockout not in ("all", "blocks", "none"):
            raise ValueError(f"knockout must be all, blocks or none, got {self.knockout!r}")
        if self.plotlyjs not in ("inline", "shared"):
            raise ValueError(f"plotlyjs must be inline or shared, got {self.plotlyjs!r}")
        if self.ig_steps < 1 or self.internal_batch_size < 1:
            raise ValueError("ig_steps and internal_batch_size must be positive")


@dataclass
class FigureEntry:
    view: str
    key: str                           # file stem, unique within the view
    model: str | None                  # None: a figure over all models
    title: str
    figure: object                     # go.Figure


@dataclass
class VideoExport:
    video: Path
    folder: Path
    files: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- PNG rendering


def _colormap(scale):
    from matplotlib.colors import LinearSegmentedColormap, to_rgb

    if isinstance(scale, str):
        import plotly.colors

        scale = plotly.colors.get_colorscale(scale)
    stops = [(float(position), to_rgb(_mpl_colour(colour))) for position, colour in scale]
    return LinearSegmentedColormap.from_list("plotly", stops)


def _mpl_colour(colour):
    """A plotly colour ('rgb(1,2,3)', 'rgba(...)', '#hex', a name) as a matplotlib colour."""
    if isinstance(colour, str):
        match = re.fullmatch(r"\s*rgba?\(([^)]*)\)\s*", colour)
        if match:
            parts = [float(p) for p in match.group(1).split(",")]
            rgb = tuple(min(max(p / 255.0, 0.0), 1.0) for p in parts[:3])
            return rgb + (parts[3],) if len(parts) == 4 else rgb
    return colour


def _plain_text(text) -> str:
    if text is None:
        return ""
    text = str(text).replace("<br>", "\n")
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _decode_source(source: str) -> np.ndarray:
    """An image trace's data URI as (H, W, 3) uint8 RGB.

    Decoded with Pillow, not cv2.imdecode: once decord is loaded (it is, after
    any clip read), OpenCV's PNG decoder binds decord's bundled zlib and fails
    with "libpng error: bad parameters to zlib" (OpenCV's encoder is unaffected).
    """
    from PIL import Image

    if not source.startswith("data:image/"):
        raise ExportError("an image trace without a data: URI cannot be rendered offline")
    with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"))


def _axis_rect(layout, x_ref: str, y_ref: str, margins: tuple[float, float, float, float], size) -> list[float]:
    """[left, bottom, width, height] in figure fractions of a plotly (x, y) subplot."""
    width, height = size
    left, right, top, bottom = margins
    xaxis = layout[_layout_key(x_ref)]
    yaxis = layout[_layout_key(y_ref)]
    xd = list(xaxis.domain) if xaxis.domain is not None else [0.0, 1.0]
    yd = list(yaxis.domain) if yaxis.domain is not None else [0.0, 1.0]
    plot_w, plot_h = max(width - left - right, 1), max(height - top - bottom, 1)
    return [
        (left + xd[0] * plot_w) / width,
        (bottom + yd[0] * plot_h) / height,
        (xd[1] - xd[0]) * plot_w / width,
        (yd[1] - yd[0]) * plot_h / height,
    ]


def _layout_key(ref: str) -> str:
    """'x' -> 'xaxis', 'y3' -> 'yaxis3'."""
    return ref[0] + "axis" + ref[1:]


def _bar(ax, trace, offset: float, width: float) -> None:
    horizontal = trace.orientation == "h"
    values = np.asarray(trace.x if horizontal else trace.y, dtype=np.float64)
    labels = list(trace.y if horizontal else trace.x) if (trace.y if horizontal else trace.x) is not None else list(
        range(len(values))
    )
    colour = trace.marker.color if trace.marker is not None and trace.marker.color is not None else None
    colours = [_mpl_colour(c) for c in colour] if isinstance(colour, (list, tuple, np.ndarray)) else _mpl_colour(colour)
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) for v in labels)
    positions = np.asarray(labels, dtype=np.float64) if numeric else np.arange(len(labels), dtype=np.float64)
    if horizontal:
        ax.barh(positions + offset, values, height=width, color=colours, label=trace.name)
        if not numeric:
            ax.set_yticks(positions, [str(v)[:40] for v in labels], fontsize=7)
    else:
        ax.bar(positions + offset, values, width=width, color=colours, label=trace.name)
        if not numeric:
            ax.set_xticks(positions, [str(v)[:24] for v in labels], fontsize=7)
    if trace.text is not None and not horizontal:
        for position, value, text in zip(positions + offset, values, trace.text):
            ax.text(position, value, _plain_text(text), ha="center", va="bottom", fontsize=6, rotation=90)


def _heatmap(fig, ax, trace) -> None:
    z = np.asarray(trace.z, dtype=np.float64)
    if trace.opacity == 0:            # the app's hover-only layers: nothing to see
        return
    rows, cols = z.shape
    x0 = trace.x0 if trace.x0 is not None else 0.0
    dx = trace.dx if trace.dx is not None else 1.0
    y0 = trace.y0 if trace.y0 is not None else 0.0
    dy = trace.dy if trace.dy is not None else 1.0
    extent = [x0 - dx / 2, x0 + dx * (cols - 0.5), y0 - dy / 2, y0 + dy * (rows - 0.5)]
    cmap = _colormap(trace.colorscale) if trace.colorscale is not None else "viridis"
    image = ax.imshow(
        z, cmap=cmap, vmin=trace.zmin, vmax=trace.zmax, origin="lower", extent=extent, aspect="auto",
        interpolation="nearest",
    )
    if trace.showscale is not False:
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)


def _colorbar(fig, trace, rect: list[float]) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    z = np.asarray(trace.z, dtype=np.float64)
    low = trace.zmin if trace.zmin is not None else float(np.nanmin(z))
    high = trace.zmax if trace.zmax is not None else float(np.nanmax(z))
    mappable = ScalarMappable(Normalize(low, high), _colormap(trace.colorscale or "Viridis"))
    fig.colorbar(mappable, cax=fig.add_axes(rect)).ax.tick_params(labelsize=6)


def _scatter(ax, trace) -> None:
    mode = trace.mode or "lines+markers"
    x, y = np.asarray(trace.x, dtype=np.float64), np.asarray(trace.y, dtype=np.float64)
    marker = trace.marker
    colour = _mpl_colour(marker.line.color or marker.color) if marker is not None else None
    if "markers" in mode:
        symbol = (marker.symbol or "") if marker is not None else ""
        if "x" in str(symbol):
            ax.scatter(x, y, marker="x", s=(marker.size or 8) ** 2 / 2, c=[colour] if colour else None, linewidths=2, zorder=3)
        elif str(marker.color or "").startswith("rgba") and _mpl_colour(marker.color)[-1] < 0.1:
            pass                       # the picker's clickable grid: invisible
        else:
            ax.scatter(x, y, s=(marker.size or 6) ** 2 / 2, c=[colour] if colour else None, zorder=3)
    if "lines" in mode:
        ax.plot(x, y, color=_mpl_colour(trace.line.color) if trace.line is not None else None)


def _is_image_cell(layout, refs, traces) -> bool:
    """An invisible-axes cell holding only images, hover-only heatmaps and markers (the app's frame cells)."""
    xaxis, yaxis = layout[_layout_key(refs[0])], layout[_layout_key(refs[1])]
    shown = [t for t in traces if t.type == "image" or (t.type == "heatmap" and t.opacity != 0)]
    return (
        xaxis.visible is False and yaxis.visible is False and len(shown) == 1
        and all(t.type in ("image", "heatmap", "scatter") for t in traces)
        and (shown[0].type == "image" or yaxis.autorange == "reversed")
    )


def _heatmap_rgb(trace) -> np.ndarray:
    """A heatmap trace's z coloured with its colour scale, (rows, cols, 3) uint8, row 0 first."""
    z = np.asarray(trace.z, dtype=np.float64)
    low = trace.zmin if trace.zmin is not None else float(np.nanmin(z))
    high = trace.zmax if trace.zmax is not None else float(np.nanmax(z))
    scaled = np.clip((z - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(z)
    cmap = _colormap(trace.colorscale) if trace.colorscale is not None else _colormap("Viridis")
    return (cmap(scaled)[..., :3] * 255).astype(np.uint8)


def _paste_cell(canvas: np.ndarray, rect: list[float], traces) -> None:
    """Draw an image cell straight into the (H, W, 3) canvas: the image fitted to the cell, centred
    (plotly's scaleanchor + constrain="domain"), and marker traces (the query cross) on top."""
    import cv2

    height, width = canvas.shape[:2]
    left, bottom, cell_w, cell_h = (rect[0] * width, rect[1] * height, rect[2] * width, rect[3] * height)
    image, smooth = None, True
    for trace in traces:
        if trace.type == "image":
            image = _decode_source(trace.source) if trace.source else np.asarray(trace.z, np.uint8)
        elif trace.type == "heatmap" and trace.opacity != 0:
            image, smooth = _heatmap_rgb(trace), False          # matrix cells stay crisp
    scale = min(cell_w / image.shape[1], cell_h / image.shape[0])
    fit_w, fit_h = max(1, int(round(image.shape[1] * scale))), max(1, int(round(image.shape[0] * scale)))
    x0 = int(round(left + (cell_w - fit_w) / 2))
    y0 = int(round(height - bottom - cell_h + (cell_h - fit_h) / 2))
    interpolation = (cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR) if smooth else cv2.INTER_NEAREST
    resized = cv2.resize(image, (fit_w, fit_h), interpolation=interpolation)
    y1, x1 = min(y0 + fit_h, height), min(x0 + fit_w, width)
    y0c, x0c = max(y0, 0), max(x0, 0)
    canvas[y0c:y1, x0c:x1] = resized[y0c - y0 : y1 - y0, x0c - x0 : x1 - x0]
    for trace in traces:
        if trace.type != "scatter" or trace.marker is None or "x" not in str(trace.marker.symbol or ""):
            continue                   # only the query cross is visible; the picker grid is transparent
        colour = _mpl_colour(trace.marker.line.color or trace.marker.color or "red")
        from matplotlib.colors import to_rgb

        rgb = tuple(int(255 * c) for c in to_rgb(colour))
        for x, y in zip(trace.x, trace.y):
            centre = (int(round(x0 + (x + 0.5) * scale)), int(round(y0 + (y + 0.5) * scale)))
            cv2.drawMarker(canvas, centre, rgb, cv2.MARKER_TILTED_CROSS, int(trace.marker.size or 12), 2)


def render_png(figure, path: str | Path, scale: float = 1.0) -> Path:
    """Draw a go.Figure made by the app's builders as a PNG of layout.width × layout.height pixels (× scale)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    layout = figure.layout
    width = int(layout.width or DEFAULT_WIDTH)
    height = int(layout.height or DEFAULT_HEIGHT)
    margin = layout.margin
    margins = (
        margin.l if margin.l is not None else 80, margin.r if margin.r is not None else 80,
        margin.t if margin.t is not None else 100, margin.b if margin.b is not None else 80,
    )
    dpi = 100.0 * scale
    fig = Figure(figsize=(width / 100.0, height / 100.0), dpi=dpi)
    FigureCanvasAgg(fig)
    by_cell: dict[tuple[str, str], list] = {}
    for trace in figure.data:
        if trace.type not in ("image", "heatmap", "bar", "scatter"):
            raise ExportError(f"no PNG renderer for plotly trace type {trace.type!r}")
        by_cell.setdefault((trace.xaxis or "x", trace.yaxis or "y"), []).append(trace)

    # Frame cells go straight onto one canvas (a matplotlib Axes per cell costs ~10 ms each).
    canvas = None
    axes: dict[tuple[str, str], object] = {}
    for refs, traces in by_cell.items():
        rect = _axis_rect(layout, refs[0], refs[1], margins, (width, height))
        if _is_image_cell(layout, refs, traces):
            if canvas is None:
                canvas = np.full((int(round(height * scale)), int(round(width * scale)), 3), 255, np.uint8)
            _paste_cell(canvas, rect, traces)
            scaled = [t for t in traces if t.type == "heatmap" and t.opacity != 0 and t.showscale is not False]
            if scaled:                 # the cell's colour bar, right of the cell
                _colorbar(fig, scaled[0], [rect[0] + rect[2] + 0.005, rect[1], 0.012, rect[3]])
        else:
            axes[refs] = fig.add_axes(rect)
    if canvas is not None:
        fig.figimage(canvas, 0, 0, origin="upper", zorder=-1)   # under the axes and colour bars

    bars: dict[tuple[str, str], list] = {}
    for refs, ax in axes.items():
        for trace in by_cell[refs]:
            if trace.type == "image":
                ax.imshow(_decode_source(trace.source) if trace.source else np.asarray(trace.z, np.uint8))
            elif trace.type == "heatmap":
                _heatmap(fig, ax, trace)
            elif trace.type == "bar":
                bars.setdefault(refs, []).append(trace)
            else:
                _scatter(ax, trace)
    for refs, group in bars.items():
        grouped = layout.barmode == "group" and len(group) > 1
        width_each = 0.8 / len(group) if grouped else 0.8
        for i, trace in enumerate(group):
            offset = (i - (len(group) - 1) / 2) * width_each if grouped else 0.0
            _bar(axes[refs], trace, offset, width_each)
        if len(group) > 1 and layout.showlegend is not False:
            axes[refs].legend(fontsize=7, loc="best")

    for (x_ref, y_ref), ax in axes.items():
        xaxis, yaxis = layout[_layout_key(x_ref)], layout[_layout_key(y_ref)]
        if yaxis.automargin:
            # Plotly grows the margin to fit category labels; make the same room on the left.
            labels = [t.get_text() for t in ax.get_yticklabels()]
            room = min(0.45, (6.0 * max((len(l) for l in labels), default=0) + 8) / width)
            left, bottom, w, h = ax.get_position().bounds
            if room > left:
                ax.set_position([room, bottom, max(w - (room - left), 0.05), h])
        if xaxis.scaleanchor or yaxis.scaleanchor:
            ax.set_aspect("equal", adjustable="box", anchor="C")
        if yaxis.autorange == "reversed" and not ax.yaxis_inverted():
            ax.invert_yaxis()
        if xaxis.range is not None:
            ax.set_xlim(*xaxis.range)
        if yaxis.range is not None:
            ax.set_ylim(*yaxis.range)
        for axis, spec in ((ax.xaxis, xaxis), (ax.yaxis, yaxis)):
            if spec.title is not None and spec.title.text:
                axis.set_label_text(_plain_text(spec.title.text), fontsize=8)
        if xaxis.visible is False and yaxis.visible is False:
            ax.set_axis_off()
        ax.tick_params(labelsize=7)
        for shape in layout.shapes or ():
            if shape.type == "rect" and shape.xref == x_ref and shape.yref == "paper":
                ax.axvspan(shape.x0, shape.x1, color=_mpl_colour(shape.fillcolor), zorder=0)

    for note in layout.annotations or ():
        if note.xref == "paper" and note.yref == "paper":
            x = (margins[0] + note.x * (width - margins[0] - margins[1])) / width
            y = (margins[3] + note.y * (height - margins[2] - margins[3])) / height
            fig.text(
                x, y, _plain_text(note.text), ha={"left": "left", "right": "right"}.get(note.xanchor, "center"),
                va={"bottom": "bottom", "top": "top"}.get(note.yanchor, "center"), fontsize=7,
            )
    if layout.title is not None and layout.title.text:
        fig.suptitle(_plain_text(layout.title.text), fontsize=9, y=0.995, va="top")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", pil_kwargs={"compress_level": 3})
    return path


# --------------------------------------------------------------------------- HTML


def write_html(entries: list[FigureEntry], path: Path, title: str, plotlyjs: str = "inline", js_path: Path | None = None) -> Path:
    """One page: a section per view, the figures of each view side by side by model."""
    import plotly.offline

    if plotlyjs == "inline":
        script = f"<script>{plotly.offline.get_plotlyjs()}</script>"
    else:
        if js_path is None:
            raise ValueError("shared plotly.js needs js_path")
        relative = Path(*[".."] * (len(path.relative_to(js_path.parent).parts) - 1), js_path.name)
        script = f'<script src="{relative.as_posix()}"></script>'
    sections = []
    for view in VIEWS:
        in_view = [e for e in entries if e.view == view]
        if not in_view:
            continue
        columns: dict[str, list[FigureEntry]] = {}
        for entry in in_view:
            columns.setdefault(entry.model or "all models", []).append(entry)
        cells = []
        for model, figures in columns.items():
            blocks = "".join(
                f"<figure><figcaption>{html.escape(e.title)}</figcaption>"
                f"{e.figure.to_html(full_html=False, include_plotlyjs=False, config={'displaylogo': False})}</figure>"
                for e in figures
            )
            cells.append(f'<div class="model"><h3>{html.escape(model)}</h3>{blocks}</div>')
        sections.append(f'<section id="{view}"><h2>{VIEW_TITLES[view]}</h2><div class="row">{"".join(cells)}</div></section>')
    toc = " · ".join(f'<a href="#{v}">{VIEW_TITLES[v]}</a>' for v in VIEWS if any(e.view == v for e in entries))
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:16px}} .row{{display:flex;gap:12px;align-items:flex-start}}
.model{{flex:1;min-width:0}} figure{{margin:0 0 8px 0}} figcaption{{font-size:12px;color:#555}}</style>
{script}</head><body><h1>{html.escape(title)}</h1><p>{toc}</p>{"".join(sections)}</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- MP4


def write_mp4(frames: np.ndarray, path: Path, fps: int = MP4_FPS) -> Path:
    """(N, H, W, 3) uint8 RGB -> an H.264 MP4 (mpeg4 when libx264 is missing), yuv420p."""
    import av

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]   # yuv420p needs even sides
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"} if codec == "libx264" else {"qscale": "2"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 14), (0, 0, 0), thickness=-1)
    ascii_text = text.encode("ascii", "replace").decode("ascii")[: max(4, out.shape[1] // 7)]
    cv2.putText(out, ascii_text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return out


# --------------------------------------------------------------------------- one model on one clip


@dataclass
class ModelRun:
    name: str
    checkpoint: Checkpoint
    frames: np.ndarray                 # (T, S, S, 3) uint8
    frame_indices: list[int]
    clip: torch.Tensor                 # (3, T, S, S)
    capture: object                    # gta_core.Capture, CPU float32
    swapped: object | None
    probs: np.ndarray
    ig: object | None = None
    cam: object | None = None
    occlusion: object | None = None
    knockouts: list = field(default_factory=list)


MODEL_STEPS = 5        # capture, Integrated Gradients, Grad-CAM, occlusion, knockouts
VIDEO_STEPS = 3        # order probe, HTML page, MP4 (plus one per model step and one per view's PNGs)


def _no_step(label: str) -> None:
    pass


def _run_model(name: str, checkpoint: Checkpoint, clip, options: ExportOptions, step=_no_step) -> ModelRun:
    from . import interpret
    from .views import probabilities, to_cpu_float32

    model = checkpoint.model
    batch = clip.tensor[None].to(options.device)
    cap = to_cpu_float32(capture(model, batch))
    has_dnl = any(getattr(r, "swappable", False) for r in cap.records.values())   # DNL or SA+TAPE
    swapped = to_cpu_float32(capture(model, batch, swap_projections=True)) if has_dnl else None
    run = ModelRun(name, checkpoint, clip.frames_uint8, list(clip.frame_indices), clip.tensor, cap, swapped, probabilities(cap))
    step(f"{name}: attention captured")
    target = int(run.probs.argmax())
    run.ig = interpret.integrated_gradients(
        model, clip.tensor, target, steps=options.ig_steps, internal_batch_size=options.internal_batch_size
    )
    step(f"{name}: Integrated Gradients")
    run.cam = interpret.grad_cam(model, clip.tensor, target)
    step(f"{name}: Grad-CAM")
    run.occlusion = interpret.frame_occlusion(model, clip.tensor, target)
    step(f"{name}: frame occlusion")
    if options.knockout != "none":
        components = interpret.knockout_components(model)
        if options.knockout == "blocks":
            components = [c for c in components if c.part == "block"]
        run.knockouts = interpret.knockout(model, clip.tensor, components, target) if components else []
    step(f"{name}: knockouts")
    return run


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "figure"


def figure_entries(runs: list[ModelRun], order_probes: dict, top_k: int = 5) -> list[FigureEntry]:
    """Every view's figures for the runs, as the app draws them (default query: middle frame, centre)."""
    from . import figures as F

    from .views import gta_head_matrices, query_view, region_view, temporal_matrices, top_k as top_classes

    entries: list[FigureEntry] = []

    def add(view, key, model, title, figure):
        entries.append(FigureEntry(view, _slug(key), model, title, figure))

    fy = fx = 0.5
    for run in runs:
        m, names = run.name, run.checkpoint.config.class_names
        t = run.frames.shape[0] // 2
        add("predictions", f"topk_{m}", m, "top-k", F.topk_figure(top_classes(run.probs, names, top_k)))
        add("predictions", f"frames_{m}", m, "sampled frames", F.frame_strip_figure(run.frames, run.frame_indices, per_row=4))
        for block, record in run.capture.records.items():
            view = query_view(record, t, fy, fx)
            prefix = f"{block}_{m}"
            if view.spacetime is not None:
                add("query", f"{prefix}_spacetime", m, f"{block}: space-time row of frame {t}",
                    F.spacetime_figure(run.frames, view.spacetime, t, fy, fx, 4, view.key_extents))
            if view.spatial is not None:
                add("query", f"{prefix}_spatial", m, f"{block}: spatial, frame {t}",
                    F.spatial_figure(run.frames[t], view.spatial, fy, fx, f"spatial, frame {t}", view.key_extents))
            if view.temporal is not None:
                add("query", f"{prefix}_temporal", m, f"{block}: temporal weights of frame {t}",
                    F.temporal_weights_figure({view.kind: view.temporal}, t, f"temporal weights of frame {t}"))
            if view.global_rows:
                add("query", f"{prefix}_global", m, f"{block}: GTA row {t}",
                    F.temporal_weights_figure(view.global_rows, t, f"GTA row {t}: mean |M̂|"))
            for label, matrix in temporal_matrices(record).items():
                add("temporal", f"{prefix}_{label}", m, f"{block}: {label}", F.matrix_figure(matrix, f"{block}: {label}"))
            for label, heads in gta_head_matrices(record).items():
                add("temporal", f"{prefix}_{label}_heads", m, f"{block}: {label} group × head",
                    F.head_grid_figure(heads, f"{block}: {label}, group × head (signed)"))
            regions = region_view(record)
            if regions is not None:
                add("regions", prefix, m, f"{block}: strongest regions",
                    F.regions_figure(run.frames, regions.maps, regions.order[:3], regions.strength))
            if run.swapped is not None and view.spatial is not None and view.temporal is not None:
                other = query_view(run.swapped.records[block], t, fy, fx)
                add("swapped", prefix, m, f"{block}: DNL vs swapped DNL",
                    F.swapped_figure(run.frames[t], (view.spatial, view.temporal), (other.spatial, other.temporal),
                                     t, fy, fx, view.key_extents))
        target_name = names[run.ig.target]
        add("attributions", f"ig_{m}", m, f"Integrated Gradients for “{target_name}” ({run.ig.steps} steps, "
            f"Δ completeness {run.ig.delta:+.2e})", F.attribution_strip_figure(run.frames, run.ig, per_row=4))
        add("attributions", f"gradcam_{m}", m, f"Grad-CAM (res5) for “{target_name}”",
            F.attribution_strip_figure(run.frames, run.cam, per_row=4))
        add("attributions", f"curves_{m}", m, "temporal importance",
            F.temporal_importance_figure(F.attribution_curves(run.ig, run.cam), "share of |attribution| per frame"))
        add("attributions", f"occlusion_{m}", m, "frame occlusion", F.occlusion_figure(run.occlusion))
        if run.knockouts:
            add("knockout", f"knockout_{m}", m, f"knockout: Δ logit of “{target_name}”",
                F.knockout_figure(run.knockouts, target_name))
    if order_probes:
        class_names = {run.name: run.checkpoint.config.class_names for run in runs}
        add("order", "order_probe", None, "original / reversed / shuffled frames",
            F.order_probe_figure(order_probes, class_names))
    return entries


def overlay_frames(runs: list[ModelRun]) -> np.ndarray:
    """The MP4's frames: per sampled frame, one column per model (attention on top, Grad-CAM below)."""
    from .views import query_view

    from .figures import overlay

    count = min(run.frames.shape[0] for run in runs)
    side = max(run.frames.shape[1] for run in runs)
    out = []
    for t in range(count):
        columns = []
        for run in runs:
            frame = run.frames[t]
            records = list(run.capture.records.values())
            top = frame
            if records:
                view = query_view(records[0], t, 0.5, 0.5)
                attention = view.spacetime[t] if view.spacetime is not None else view.spatial
                if attention is not None:
                    top = overlay(frame, attention, extents=view.key_extents)
            cam = overlay(frame, run.cam.positive_maps[t], (0.0, float(run.cam.positive_maps.max()) or 1.0))
            column = np.concatenate([_label(top, f"{run.name} {records[0].name if records else ''}"),
                                     _label(cam, "Grad-CAM")], axis=0)
            if column.shape[1] != side:
                import cv2

                column = cv2.resize(column, (side, side * 2), interpolation=cv2.INTER_NEAREST)
            columns.append(column)
        out.append(np.concatenate(columns, axis=1))
    return np.stack(out)


def _summary(video: Path, runs: list[ModelRun], probes: dict, top_k: int) -> dict:
    from .views import top_k as top_classes

    models = {}
    for run in runs:
        names = run.checkpoint.config.class_names
        entry = {
            "checkpoint": str(run.checkpoint.path),
            "frame_indices": run.frame_indices,
            "top_k": [{"class": n, "p": p} for _, n, p in top_classes(run.probs, names, top_k)],
            "integrated_gradients": {
                "target": names[run.ig.target], "steps": run.ig.steps, "score": run.ig.score,
                "baseline_score": run.ig.baseline_score, "delta": run.ig.delta, "mass": run.ig.mass.tolist(),
            },
            "grad_cam_share": run.cam.mass.tolist(),
            "occlusion_drop": run.occlusion.drop.tolist(),
            "knockout": [
                {"component": r.component.label, "logit_change": r.score_change, "p_change": r.probability_change,
                 "top1_after": names[r.top1_after]}
                for r in run.knockouts
            ],
        }
        probe = probes.get(run.name)
        if probe is not None:
            entry["order_probe"] = {
                order: {"frames": probe.orders[order], "top1": names[probe.top1[i]],
                        "p_original_top1": float(probe.target_probabilities[i]),
                        "max_logit_change": probe.max_logit_change(order)}
                for i, order in enumerate(probe.orders)
            }
        models[run.name] = entry
    return {"video": str(video), "models": models}


# --------------------------------------------------------------------------- the export


def export_video(
    video: str | Path,
    checkpoints: dict[str, Checkpoint],
    out: str | Path,
    options: ExportOptions | None = None,
    progress=None,
) -> VideoExport:
    """Every view's figures (PNG + one HTML page), the overlay MP4 and a summary for one video.

    `checkpoints`: display name -> loaded checkpoint (models are only read;
    interpretation runs on private copies). `progress`: a tqdm bar advanced by
    one step per stage (`export_steps` of them), or None. Raises VideoError
    for a bad video.
    """
    from . import interpret

    options = options or ExportOptions()
    video = Path(video)
    folder = Path(out) / _slug(video.stem)
    result = VideoExport(video, folder)
    def step(label: str) -> None:
        if progress is not None:
            progress.set_postfix_str(f"{video.name}: {label}", refresh=False)
            progress.update(1)

    clips: dict[ClipSpec, object] = {}
    runs = []
    for name, checkpoint in checkpoints.items():
        spec = ClipSpec.from_config(checkpoint.config.to_dict())
        if spec not in clips:
            clips[spec] = read_clip(video, spec, untrusted=options.untrusted, decoder=options.decoder)
        runs.append(_run_model(name, checkpoint, clips[spec], options, step))
    probes = {run.name: interpret.order_probe_one(run.checkpoint.model, run.clip, options.seed) for run in runs}
    step("order probe")
    entries = figure_entries(runs, probes, options.top_k)
    for view in VIEWS:
        for entry in (e for e in entries if e.view == view):
            result.files.append(render_png(entry.figure, folder / entry.view / f"{entry.key}.png"))
        step(f"{view} figures")
    js_path = Path(out) / PLOTLY_JS if options.plotlyjs == "shared" else None
    result.files.append(
        write_html(entries, folder / "figures.html", f"GTA Lens: {video.name}", options.plotlyjs, js_path)
    )
    step("HTML page")
    result.files.append(write_mp4(overlay_frames(runs), folder / "attention.mp4"))
    step("MP4")
    summary = folder / "summary.json"
    summary.write_text(json.dumps(_summary(video, runs, probes, options.top_k), indent=2) + "\n")
    result.files.append(summary)
    return result


def export_steps(videos: int, models: int) -> int:
    """Progress steps of an export: per video, MODEL_STEPS per model, one per view, VIDEO_STEPS."""
    return videos * (models * MODEL_STEPS + len(VIEWS) + VIDEO_STEPS)


def list_videos(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ExportError(f"{path}: no such video or folder")
    videos = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not videos:
        raise ExportError(f"{path}: no videos ({', '.join(VIDEO_SUFFIXES)}) in this folder")
    return videos


def export(
    checkpoint_paths: list[str | Path],
    source: str | Path,
    out: str | Path,
    options: ExportOptions | None = None,
    show_progress: bool = True,
) -> tuple[list[VideoExport], dict[str, str]]:
    """Export every video of `source` (a file or a folder, searched recursively).

    Returns the exports and {video: message} for the videos that failed (a bad
    video does not stop the others). Raises CheckpointError / ExportError.
    """
    from tqdm import tqdm

    options = options or ExportOptions()
    out = Path(out)
    checkpoints = {}
    for path in checkpoint_paths:
        checkpoint = load_checkpoint(path, device=options.device)
        name = Path(path).name
        while name in checkpoints:
            name += "_"
        checkpoints[name] = checkpoint
    videos = list_videos(Path(source))
    out.mkdir(parents=True, exist_ok=True)
    if options.plotlyjs == "shared":
        import plotly.offline

        (out / PLOTLY_JS).write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    done, failed = [], {}
    total = export_steps(len(videos), len(checkpoints))
    with tqdm(total=total, desc="export", unit="step", disable=not show_progress, file=sys.stderr,
              miniters=1, mininterval=0) as bar:             # every stage shows (few, long steps)
        for index, video in enumerate(videos):
            try:
                done.append(export_video(video, checkpoints, out, options, progress=bar))
            except VideoError as error:
                failed[str(video)] = str(error)
            bar.n = export_steps(index + 1, len(checkpoints))       # a failed video skips its remaining steps
            bar.refresh()
    return done, failed


# --------------------------------------------------------------------------- CLI


def cmd_export(args) -> int:
    if len(args.paths) < 2:
        print("error: give at least one checkpoint folder and then a video or a folder of videos", file=sys.stderr)
        return 2
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    options = ExportOptions(
        ig_steps=args.ig_steps, internal_batch_size=args.internal_batch_size, knockout=args.knockout,
        plotlyjs=args.plotlyjs, top_k=args.topk, seed=args.seed, device=args.device, untrusted=args.probe,
    )
    try:
        done, failed = export(args.paths[:-1], args.paths[-1], args.out, options, show_progress=not args.no_progress)
    except (CheckpointError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = sum(len(d.files) for d in done)
    print(f"wrote {files} files for {len(done)} video(s) under {args.out}")
    for video, message in failed.items():
        print(f"skipped {video}: {message}", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="every view's figures (PNG, HTML) and an attention MP4 per video",
        description="python -m gta_core export CHECKPOINT [CHECKPOINT ...] VIDEO_OR_FOLDER --out DIR",
    )
    parser.add_argument("paths", nargs="+", metavar="CHECKPOINT ... VIDEO_OR_FOLDER",
                        help="one or more checkpoint folders, then a video file or a folder of videos")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per video)")
    parser.add_argument("--ig-steps", type=int, default=32, help="Integrated Gradients steps (default 32)")
    parser.add_argument("--internal-batch-size", type=int, default=8,
                        help="interpolated clips per IG forward/backward, bounds memory (default 8)")
    parser.add_argument("--knockout", choices=("all", "blocks", "none"), default="all",
                        help="knock out every component, whole blocks only, or nothing (default all)")
    parser.add_argument("--plotlyjs", choices=("inline", "shared"), default="inline",
                        help="plotly.js inside every page (default) or once in OUT/plotly.min.js")
    parser.add_argument("--topk", type=int, default=5, help="classes per model in the predictions view (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order probe's shuffle")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--probe", action="store_true",
                        help="probe each video in a child process first (for files from elsewhere)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's own; 1 is fastest on a busy 2-core CPU)")
    parser.set_defaults(func=cmd_export)
