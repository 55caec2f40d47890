"""GTA Lens: the paper's figures, live, for several models side by side.

    gta-lens app [-- --videos DIR --checkpoints DIR ...]     (or: streamlit run app/main.py [-- ...])

Every run: the sidebar picks a video, 1–4 checkpoints, device and precision;
the models run (cached by checkpoint, video content and options); the query
point is read; then the chosen view draws from the cached results. The
Dataset view compares the same checkpoints over a whole dataset split.
"""
from __future__ import annotations

import logging
import sys

import streamlit as st

from app import engine, ui
from app.settings import load_settings

st.set_page_config(page_title="GTA Lens", page_icon="🔍", layout="wide")

PAGES = [
    st.Page("views/predictions.py", title="Predictions", default=True),
    st.Page("views/query.py", title="Query point"),
    st.Page("views/temporal.py", title="Temporal attention"),
    st.Page("views/regions.py", title="Regions"),
    st.Page("views/swapped.py", title="Swapped attention"),
    st.Page("views/query_dependence.py", title="Query dependence"),
    st.Page("views/attributions.py", title="Attributions"),
    st.Page("views/order_probe.py", title="Order probe"),
    st.Page("views/knockout.py", title="Knockout"),
    st.Page("views/export.py", title="Export"),
    st.Page("views/dataset.py", title="Dataset"),
]
navigation = st.navigation(PAGES)
ui.open_shared_view(PAGES, navigation)   # a shared link's view (the query parameter `view`), on the first run

settings = load_settings(sys.argv[1:])
engine.set_cache_budget(settings.cache_bytes)  # the byte budget shared by every session
ui.apply_jump()                           # a clip opened from the Dataset view, before the sidebar is drawn
st.sidebar.title("GTA Lens")
video = ui.choose_video(settings)
entries = ui.choose_checkpoints(settings)
device, precision = ui.choose_runtime()

results, errors = [], {}
truth = None
if video is not None and entries:
    results, errors = ui.run_models(video, entries, device, precision, settings.records_dtype)
    if not video.uploaded:  # uploads come without a label
        truth = engine.ground_truth(str(video.path), video.path.stat().st_mtime_ns)
query, top_k = ui.choose_query(results)
ui.server_panel(settings.records_dtype)
st.session_state[ui.CONTEXT_KEY] = ui.Context(video, truth, results, errors, query, top_k, entries, device)
ui.share_in_url(video, entries, query, navigation)
try:
    navigation.run()
except Exception as error:  # noqa: BLE001 - st.stop() is a BaseException and passes through
    logging.getLogger("gta_lens").exception("a view failed")
    st.error(f"This view could not be drawn: {ui.plain_error(error)}")
