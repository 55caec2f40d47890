"""Predictions: top-k per model, the ground truth when known, the sampled frames."""
import streamlit as st

from app import ui
from gta_core.figures import frame_strip_figure, topk_figure
from gta_core.views import domain_check, prediction_entropy, top_k

ctx = ui.page_context(
    "Predictions", "Top-k classes of every model on the same clip; the true class in green.", needs_query=False
)
ui.video_caption(ctx)
for index, (column, result) in enumerate(ui.model_columns(ctx.results)):
    with column:
        ui.model_header(result)
        names = result.config.class_names
        check = domain_check(result.config.dataset, ctx.video.path)
        nats, fraction = prediction_entropy(result.probs)
        entropy = f"entropy {nats:.2f} nats ({fraction:.0%} of the maximum, log {len(names)})"
        if check.in_domain:
            st.caption(f"In domain: {check.reason} · {entropy}")
        else:
            st.warning(
                f"Out of domain: this model was trained on {check.trained_on}; {check.reason}. Its probabilities "
                f"are not calibrated here, however high the top bar: {entropy}."
            )
        ui.chart(topk_figure(top_k(result.probs, names, ctx.top_k), ctx.truth), key=f"topk_{index}")
        if ctx.truth is not None:
            if ctx.truth in names:
                p_truth = result.probs[names.index(ctx.truth)]
                rank = int((result.probs > p_truth).sum()) + 1
                st.caption(f"ground truth rank {rank} of {len(names)}, p = {p_truth:.3f}")
            else:
                st.caption("the ground truth is not one of this checkpoint's classes")
        st.caption(
            f"{result.seconds * 1000:.0f} ms on {result.device} ({result.precision}) · decoder {result.decoder} · "
            f"sampled frames {list(result.frame_indices)}"
        )
        views = result.config.clip_spec().num_views
        if views > 1:
            st.caption(
                f"Its source tests {views} views (clips × crops) and averages them; shown here is one, the middle "
                "clip's centre crop. `python -m gta_core predict` runs all of them and reports each."
            )
        per_row = 4 if result.frames.shape[0] <= 8 else 8    # a 64-frame SlowFast clip: 8 rows, not 16
        ui.chart(frame_strip_figure(result.frames, list(result.frame_indices), per_row=per_row), key=f"strip_{index}")
