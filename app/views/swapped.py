"""Swapped attention (paper Fig. 7): DNL's maps against swapped DNL's for the same query."""
import streamlit as st

from app import ui
from gta_core.figures import spacetime_figure, swapped_figure
from gta_core.views import query_view

ctx = ui.page_context(
    "Swapped attention",
    "Swapped DNL runs the spatial block with the temporal block's query/key/value projections and vice versa "
    "(inference only). NL models show their space-time row for the same query, as in the figure's first row.",
)
query = ctx.query
st.markdown(f"Query: block **{query.block}**, frame **t = {query.t}**, y = {int(query.fy * 100)}%, x = {int(query.fx * 100)}%.")
for index, result, record in ui.block_columns(ctx):
    time = ui.timeline(result, record, query)
    if record.kind == "nl":
        view = query_view(record, time.frame, time.fy, time.fx)
        st.caption(view.step_label)
        ui.chart(
            spacetime_figure(
                time.images, view.spacetime, view.step, time.fy, time.fx, 4, view.key_extents, time.names
            ),
            key=f"swap_nl_{index}",
        )
        continue
    if result.swapped is None or record.name not in result.swapped.records:
        st.info("Swapping needs a DNL block (SA followed by TA, each with its own projections).")
        continue
    original = query_view(record, time.frame, time.fy, time.fx)
    swapped = query_view(result.swapped.records[record.name], time.frame, time.fy, time.fx)
    if original.spatial is None or original.temporal is None:
        st.info("Swapping needs a DNL block (SA followed by TA).")
        continue
    st.caption(original.step_label)
    ui.chart(
        swapped_figure(
            time.images[original.step], (original.spatial, original.temporal), (swapped.spatial, swapped.temporal),
            original.step, time.fy, time.fx, original.key_extents, time.names,
        ),
        key=f"swapped_{index}",
    )
