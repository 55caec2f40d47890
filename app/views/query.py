"""Query point (paper Fig. 1, 3): NL's space-time row; DNL/GTA's spatial map and temporal weights."""
import streamlit as st

from app import ui
from gta_core.figures import picker_figure, spacetime_figure, spatial_figure, temporal_weights_figure
from gta_core.views import query_view

ctx = ui.page_context(
    "Query point",
    "Pick a frame and a point (click the frame or use the sidebar). NL attends over all frames at once; "
    "DNL and GTA attend in space inside the query frame, then along time at the query position.",
)
query = ctx.query
shown = ui.shown_results(ctx, "query_models")
per_row = 8 if len(shown) == 1 else 4       # one model alone: every frame in one full-width row
picker_column, info_column = st.columns([1, 2])
with picker_column:
    frame = ctx.results[0].frames[query.t]
    st.session_state["picker_size"] = frame.shape[0]
    st.plotly_chart(
        picker_figure(frame, query.fy, query.fx), key="picker", on_select=ui.on_pick,
        selection_mode="points", config={"displaylogo": False},
    )
with info_column:
    st.markdown(
        f"Query: block **{query.block}**, frame **t = {query.t}**, "
        f"y = {int(query.fy * 100)}%, x = {int(query.fx * 100)}% of the frame (red cross, as in the sidebar)."
    )
    st.caption(f"The clicked frame is {ctx.results[0].name}'s crop; every model maps the same relative position.")

for index, result, record in ui.block_columns(ctx, shown):
    view = query_view(record, query.t, query.fy, query.fx)
    st.caption(
        f"{view.kind} · query cell {view.cell} on the {view.grid[0]}×{view.grid[1]} feature grid"
        + (f", keys on {view.key_grid[0]}×{view.key_grid[1]}" if view.key_grid else "")
    )
    if view.spacetime is not None:
        ui.chart(
            spacetime_figure(result.frames, view.spacetime, query.t, query.fy, query.fx, per_row, view.key_extents),
            key=f"nl_{index}",
        )
    if view.spatial is not None:
        ui.chart(
            spatial_figure(
                result.frames[query.t], view.spatial, query.fy, query.fx, f"spatial, frame {query.t}", view.key_extents
            ),
            key=f"spatial_{index}",
        )
    if view.temporal is not None:
        ui.chart(
            temporal_weights_figure({view.kind: view.temporal}, query.t, f"temporal weights of frame {query.t}"),
            key=f"temporal_{index}",
        )
    if view.global_rows:
        ui.chart(
            temporal_weights_figure(view.global_rows, query.t, f"GTA row {query.t}: mean |M̂| (same at every pixel)"),
            key=f"global_{index}",
        )
