"""Export: this video's figures of every view (PNG + standalone HTML), the attention MP4 and a summary, as a zip."""
import streamlit as st

from app import interpret_engine, ui

ctx = ui.page_context(
    "Export",
    "The same files as `python -m gta_core export CHECKPOINT ... VIDEO --out DIR`: every view's figures as PNG and "
    "as one standalone HTML page (plotly.js inside, nothing loaded from the network), an MP4 of the attention "
    "overlays and summary.json, for the chosen models on this video.",
    needs_query=False,
)
columns = st.columns(2)
steps = ui.ig_steps_slider(columns[0], "export_ig_steps")
knockout = columns[1].radio("Knockouts", ["all", "blocks", "none"], horizontal=True, key="export_knockout")
names = [r.name for r in ctx.results]
device = ctx.results[0].device
request = (ctx.video.digest, tuple(names), device, steps, knockout)
if st.button("Prepare export", key="export_run"):
    try:
        with st.spinner(f"Exporting {ctx.video.name} for {len(names)} model(s)…"):
            data, note = interpret_engine.export_zip(ctx.video, names, device, steps, knockout)
            st.session_state["export_zip"], st.session_state["export_note"] = (request, data), note
    except Exception as error:  # noqa: BLE001 - a message, never a traceback
        st.error(ui.plain_error(error))
ready = st.session_state.get("export_zip")
if ready is not None and ready[0] == request:
    stem = ctx.video.path.stem if ctx.video.trusted else ctx.video.digest[:12]
    st.download_button(
        f"Download ({len(ready[1]) / 1e6:.1f} MB zip)", ready[1], file_name=f"gta_lens_{stem}.zip",
        mime="application/zip", key="export_download",
    )
    if st.session_state.get("export_note"):
        st.caption(st.session_state["export_note"])
elif ready is not None:
    st.caption("The choices changed since the last export: prepare it again.")
