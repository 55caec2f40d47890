"""Query point (paper Fig. 1, 3): NL's space-time row; DNL/GTA's spatial map and temporal weights."""
import streamlit as st

from app import interpret_engine, ui
from gta_core.figures import footprint_figure, picker_figure, spacetime_figure, spatial_figure, temporal_weights_figure
from gta_core.views import box_in_crop, dependence_label, query_view

ctx = ui.page_context(
    "Query point",
    "Pick a frame and a point (click the frame or use the sidebar). NL attends over all frames at once; "
    "DNL and GTA attend in space inside the query frame, then along time at the query position.",
)
query = ctx.query
shown = ui.shown_results(ctx, "query_models")
per_row = 8 if len(shown) == 1 else 4       # one model alone: every frame in one full-width row
show_footprint = st.toggle(
    "Footprint in the input", key="query_footprint",
    help="The input frames and pixels the query's feature depends on (gradient of the block-input feature at the "
         "query w.r.t. the clip): on 3D models far more than the step's nominal frames. One backward pass per model.",
)
picker_column, info_column = st.columns([1, 2])
with picker_column:
    longest = ui.reference_result(ctx.results)     # the clip the frame slider runs over, the crop it shows
    frame = longest.frames[query.t]
    st.session_state["picker_size"] = frame.shape[0]
    # Models that crop another part of the scene (another resize, crop size or aspect): their crops, outlined.
    boxes = [(r.name, box_in_crop(r.crop_box, longest.crop_box)) for r in ctx.results
             if tuple(round(v, 4) for v in r.crop_box) != tuple(round(v, 4) for v in longest.crop_box)]
    st.plotly_chart(
        picker_figure(frame, query.fy, query.fx, boxes=boxes), key="picker", on_select=ui.on_pick,
        selection_mode="points", config={"displaylogo": False},
    )
with info_column:
    st.markdown(
        f"Query: block **{query.block}**, frame **t = {query.t}**, "
        f"y = {int(query.fy * 100)}%, x = {int(query.fx * 100)}% of the frame (red cross, as in the sidebar)."
    )
    st.caption(
        f"The clicked frame is {longest.name}'s crop; every model reads the same point of the scene through its "
        "own resize and crop (dashed: crops that differ), and the same moment of the video through its own "
        "frame sampling."
    )

for index, result, record in ui.block_columns(ctx, shown):
    time = ui.timeline(result, record, query)
    view = query_view(record, time.frame, time.fy, time.fx)
    if not time.inside:
        st.caption(":orange[The query point lies outside this model's crop: it is read at the crop's nearest edge.]")
    st.caption(
        f"{view.kind} · {record.name}, {view.step_label} · query cell {view.cell} on the "
        f"{view.grid[0]}×{view.grid[1]} feature grid"
        + (f", keys on {view.key_grid[0]}×{view.key_grid[1]}" if view.key_grid else "")
    )
    st.caption(f"Query dependence of this clip: {dependence_label(ui.dependence(result, record))}")
    if not view.is_distribution:
        st.warning(
            "This block's rows are not distributions (dot-product NL: θφᵀ/N without a softmax): weights are "
            "signed and need not sum to 1. Red is positive, blue negative, white 0."
        )
    step = view.step
    if view.spacetime is not None:
        ui.chart(
            spacetime_figure(
                time.images, view.spacetime, step, time.fy, time.fx, per_row, view.key_extents, time.names,
                signed=not view.is_distribution,
            ),
            key=f"nl_{index}",
        )
    if view.spatial is not None:
        ui.chart(
            spatial_figure(
                time.images[step], view.spatial, time.fy, time.fx, f"spatial, {view.step_label}", view.key_extents
            ),
            key=f"spatial_{index}",
        )
    if view.temporal is not None:
        ui.chart(
            temporal_weights_figure(
                {view.kind: view.temporal}, step, f"temporal weights of {view.step_label}", time.names
            ),
            key=f"temporal_{index}",
        )
    if view.global_rows:
        ui.chart(
            temporal_weights_figure(
                view.global_rows, step, f"GTA row {step}: mean |M̂| (same at every pixel)", time.names
            ),
            key=f"global_{index}",
        )
    if show_footprint:
        decoder = interpret_engine.decoder_or_stop(ctx.video)
        found = interpret_engine.run_for(interpret_engine.footprint, result, ctx.video, decoder, record.name, step,
                                         *view.cell)
        size = result.frames.shape[1]
        (y, x), (rows, cols) = view.cell, view.grid
        box = (y * size / rows, x * size / cols, (y + 1) * size / rows, (x + 1) * size / cols)
        ui.chart(
            footprint_figure(
                result.frames[time.frame], found.weights[time.frame], found.frame_mass, found.nominal_frames, box,
                f"footprint: frames {found.frames[0]}–{found.frames[1] - 1} "
                f"(nominal {found.nominal_frames[0]}–{found.nominal_frames[1] - 1})",
            ),
            key=f"footprint_{index}",
        )
