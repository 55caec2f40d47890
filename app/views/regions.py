"""Regions (paper Fig. 3, 6): Region GTA's K region maps over the frames, strongest first."""
import streamlit as st

from app import ui
from gta_core.figures import regions_figure
from gta_core.views import find_record, region_view, step_frames, step_names

CELL = 140   # pixels per frame: one model at a time, full width, so every frame's map is legible

ctx = ui.page_context(
    "Regions",
    "Region GTA pools the pixels of each frame into K soft regions (G_R(t) = W_G X(t)ᵀ) and runs GTA per region. "
    "Rows: the picked region, then the strongest others (mean norm of the region's GTA output); columns: frames. "
    "Each row has its own colour bar unless one scale is shared.",
)
query = ctx.query
records = {r.name: find_record(r.capture.records, query.block) for r in ctx.results}
views = {r.name: (r, v) for r in ctx.results if (v := region_view(records[r.name])) is not None}
if not views:
    st.info(f"None of the chosen models has Region GTA in block {query.block}.")
    st.stop()
controls = st.columns([2, 1, 1])
name = controls[0].radio("Model", list(views), horizontal=True, key="regions_model")
shown = controls[1].slider("Strongest regions shown", 1, 8, 3, key="regions_shown")
shared = controls[2].toggle("One colour scale", key="regions_shared", help="one scale and bar for every row")
result, view = views[name]
ui.model_header(result)
labels = {f"region {k} (rank {rank + 1}, strength {view.strength[k]:.3f})": k for rank, k in enumerate(view.order)}
region = labels[st.selectbox("Region", list(labels), key="region_pick")]
record = records[name]
st.caption(f"{view.maps.shape[1]} regions on the {view.maps.shape[2]}×{view.maps.shape[3]} grid of {record.name}")
rows = [region] + [k for k in view.order[:shown] if k != region]      # the picked region once, on top
per_frame = view.maps.shape[0] == result.frames.shape[0]            # else a 3D block: one column per time step
figure = regions_figure(
    step_frames(result.frames, record), view.maps, rows, view.strength, shared_scale=shared, cell=CELL,
    step_names=None if per_frame else step_names(record),
)
ui.chart(figure, key="regions_fig")
