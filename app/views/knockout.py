"""Knockout: zero one GTA head, group, region, branch or a whole block and rescore the clip."""
import streamlit as st

from app import interpret_engine, ui
from gta_core.figures import knockout_figure

ctx = ui.page_context(
    "Knockout",
    "Each component is zeroed on its own at inference (a private copy of the model): whole blocks, SA/TA parts, "
    "Pixel and Region GTA, GTA heads (M̂[:, k] = 0), channel groups (M̂[g, :] = 0) and regions. "
    "The bars are the change of the class logit, largest first (red: the score falls).",
    needs_query=False,
)
top = st.slider("Components shown", 5, 60, 20, key="knockout_top")
decoder = interpret_engine.decoder_or_stop(ctx.video)
for index, (column, result) in enumerate(ui.model_columns(ctx.results)):
    with column:
        ui.model_header(result)
        names = result.config.class_names
        try:
            with st.spinner(f"Knocking out the components of {result.name}…"):
                results = interpret_engine.run_for(interpret_engine.knockouts, result, ctx.video, decoder, None)
        except Exception as error:  # noqa: BLE001
            st.error(f"{result.name}: {ui.plain_error(error)}")
            continue
        if not results:
            st.info("This model has no inserted block to knock out.")
            continue
        target = results[0].target
        ui.chart(knockout_figure(results, names[target], top), key=f"knockout_{index}")
        labels = [r.component.label for r in results]
        chosen = results[labels.index(st.selectbox("Inspect", labels, key=f"knockout_pick_{index}"))]
        rows = sorted(range(len(names)), key=lambda k: -chosen.logits[k])[:5]
        st.dataframe(   # the numbers first: a long class name would push them out of a narrow column
            {
                "logit": [round(float(chosen.logits[k]), 4) for k in rows],
                "knocked out": [round(float(chosen.knocked_logits[k]), 4) for k in rows],
                "Δ": [round(float(chosen.delta[k]), 4) for k in rows],
                "class": [names[k] for k in rows],
            },
            hide_index=True,
        )
        if chosen.top1_after != target:
            st.warning(f"top-1 becomes **{names[chosen.top1_after]}**")
