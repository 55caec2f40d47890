"""Regions (paper Fig. 3, 6): Region GTA's K region maps over the frames, strongest first."""
import streamlit as st

from app import ui
from app.figures import regions_figure
from gta_core.views import region_view

ctx = ui.page_context(
    "Regions",
    "Region GTA pools the pixels of each frame into K soft regions (G_R(t) = W_G X(t)ᵀ) and runs GTA per region. "
    "Rows: regions, strongest first (mean norm of the region's GTA output); columns: frames.",
)
query = ctx.query
shown = st.slider("Strongest regions shown", 1, 8, 3, key="regions_shown")
for index, result, record in ui.block_columns(ctx):
    view = region_view(record)
    if view is None:
        st.info(f"Block {query.block} has no Region GTA.")
        continue
    labels = {
        f"region {k} (rank {rank + 1}, strength {view.strength[k]:.3f})": k for rank, k in enumerate(view.order)
    }
    region = labels[st.selectbox("Region", list(labels), key=f"region_{index}")]
    st.caption(f"{view.maps.shape[1]} regions on the {view.maps.shape[2]}×{view.maps.shape[3]} grid of {query.block}")
    ui.chart(regions_figure(result.frames, view.maps, [region], view.strength), key=f"region_fig_{index}")
    ui.chart(
        regions_figure(result.frames, view.maps, view.order[:shown], view.strength), key=f"regions_top_{index}"
    )
