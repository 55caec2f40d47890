"""Attributions: Integrated Gradients, Grad-CAM per frame, temporal importance and frame occlusion."""
import streamlit as st

from app import interpret_engine, ui
from gta_core.figures import attribution_curves, attribution_strip_figure, occlusion_figure, temporal_importance_figure

ctx = ui.page_context(
    "Attributions",
    "Which pixels and frames the class score rests on. Integrated Gradients (input, from a mean-colour baseline), "
    "Grad-CAM on the last stage per frame, each frame's share of the attribution, and the score drop when a frame "
    "is replaced by its neighbours or by the clip's mean frame.",
    needs_query=False,
)
controls = st.columns(3)
steps = ui.ig_steps_slider(controls[0], "ig_steps")
fill = controls[1].radio("Occlusion fill", ["neighbours", "mean"], horizontal=True, key="occlusion_fill")
use_predicted = controls[2].toggle("Predicted class", value=True, key="attr_predicted")
decoder = interpret_engine.decoder_or_stop(ctx.video)
shown = ui.shown_results(ctx, "attr_models")
per_row = 8 if len(shown) == 1 else 4       # one model alone: every frame in one full-width row
for index, (column, result) in enumerate(ui.model_columns(shown)):
    with column:
        ui.model_header(result)
        names = result.config.class_names
        target = None
        if not use_predicted:
            target = names.index(st.selectbox("Class", names, key=f"attr_class_{index}"))
        try:
            with st.spinner(f"Integrated Gradients ({steps} steps) on {result.name}…"):
                ig, cam, occlusion = interpret_engine.run_for(
                    interpret_engine.attributions, result, ctx.video, decoder, target, steps, fill
                )
        except Exception as error:  # noqa: BLE001 - a message, never a traceback
            st.error(f"{result.name}: {ui.plain_error(error)}")
            continue
        st.caption(
            f"class **{names[ig.target]}** · logit {ig.score:.3f} (baseline {ig.baseline_score:.3f}) · "
            f"IG completeness gap {ig.delta:+.2e}"
        )
        ui.chart(attribution_strip_figure(result.frames, ig, per_row=per_row), key=f"ig_{index}")
        ui.chart(attribution_strip_figure(result.frames, cam, per_row=per_row), key=f"cam_{index}")
        ui.chart(
            temporal_importance_figure(attribution_curves(ig, cam), "share of |attribution| per frame"),
            key=f"curves_{index}",
        )
        ui.chart(occlusion_figure(occlusion), key=f"occlusion_{index}")
