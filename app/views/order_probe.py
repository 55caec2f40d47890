"""Order probe: every model on the original, reversed and shuffled frames (the paper's argument, live)."""
import streamlit as st

from app import interpret_engine, ui
from gta_core.figures import order_probe_figure
from gta_core.interpret import ORDERS, order_sensitivity

ctx = ui.page_context(
    "Order probe",
    "The same frames in the original, reversed and a shuffled order. R2D, +NL and +DNL average per-frame outputs "
    "and attend without positions, so they cannot tell the orders apart; TAPE, GTA, TSM and 3D models "
    "(I3D, SlowFast: temporal convolutions) can.",
    needs_query=False,
)
seed = st.number_input("Shuffle seed", 0, 10_000, 0, key="order_seed")
decoder = interpret_engine.decoder_or_stop(ctx.video)
probes, classes = {}, {}
for result in ctx.results:
    try:
        probes[result.name] = interpret_engine.run_for(interpret_engine.order_probe, result, ctx.video, decoder, int(seed))
        classes[result.name] = result.config.class_names
    except Exception as error:  # noqa: BLE001
        st.error(f"{result.name}: {ui.plain_error(error)}")
if probes:
    ui.chart(order_probe_figure(probes, classes), key="order_all")
    first = next(iter(probes.values()))
    st.caption(f"shuffled order: {first.orders['shuffled']}")
for index, (column, result) in enumerate(ui.model_columns(ctx.results)):
    probe = probes.get(result.name)
    if probe is None:
        continue
    with column:
        ui.model_header(result)
        sensitive, why = order_sensitivity(result.config.model_config())
        st.caption(f"{'Order-sensitive' if sensitive else 'Order-invariant'} by construction: {why}.")
        names = result.config.class_names
        for row, order in enumerate(ORDERS):   # the whole class name (a metric would cut it)
            st.markdown(f"**{order}**: {names[probe.top1[row]]}")
            if row:
                changed = "top-1 changed" if probe.top1_changed(order) else "same top-1"
                st.caption(
                    f"{probe.score_change(order):+.4f} logit of the original top-1 · "
                    f"max |Δ logit| over classes {probe.max_logit_change(order):.2e} · {changed}"
                )
