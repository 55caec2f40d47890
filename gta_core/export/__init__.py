"""`python -m gta_core export`: every view's figures for a set of videos, as files.

    python -m gta_core export CHECKPOINT [CHECKPOINT ...] VIDEO_OR_FOLDER --out DIR
        [--ig-steps 32] [--internal-batch-size 8] [--knockout all|blocks|none]
        [--plotlyjs inline|shared] [--probe] [--browser PATH] [--no-progress]

writes, per video, DIR/<video stem>/ with

    figures.html           every view's figures, the models side by side, one standalone page
    <view>/<figure>.png    every figure as a PNG (views: predictions, query, temporal, regions,
                           swapped, attributions, order, knockout)
    attention.mp4          the attention overlays frame by frame, one column per model (H.264)
    summary.json           predictions, order probe, IG completeness, knockout scores as numbers

The figures are built by the pure builders the app uses (`gta_core.figures`)
from `gta_core.views` / `gta_core.interpret` arrays, so an exported figure is
the figure the app shows. Block views (query, temporal, regions, swapped) are
drawn for every block, at the app's default query: the middle frame, the
centre of the crop.

PNG. Plotly's own exporter (kaleido, a headless Chromium) draws each go.Figure
(`files.PngWriter`): the PNG is what a browser shows. Without a Chromium or
Chrome the export writes everything else and says in one line that PNGs need
`apt-get install chromium`.

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
from .cli import cmd_export, register
from .files import NO_BROWSER_NOTE, PngWriter, png_session, write_html, write_mp4, write_pngs
from .pipeline import (
    MODEL_STEPS,
    VIDEO_STEPS,
    VIEWS,
    ExportError,
    ExportOptions,
    FigureEntry,
    ModelRun,
    VideoExport,
    export,
    export_steps,
    export_video,
    figure_entries,
    list_videos,
    model_entries,
    order_entries,
    overlay_frames,
)

__all__ = [
    "MODEL_STEPS", "NO_BROWSER_NOTE", "VIDEO_STEPS", "VIEWS", "ExportError", "ExportOptions", "FigureEntry",
    "ModelRun", "PngWriter", "VideoExport", "cmd_export", "export", "export_steps", "export_video",
    "figure_entries", "list_videos", "model_entries", "order_entries", "overlay_frames", "png_session",
    "register", "write_html", "write_mp4", "write_pngs",
]
