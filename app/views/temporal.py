"""Temporal attention (paper Fig. 5): TA's averaged weights against GTA's learned matrices."""
import streamlit as st

from app import ui
from app.figures import difference_figure, head_grid_figure, matrix_figure
from gta_core.views import gta_head_matrices, temporal_matrices

ctx = ui.page_context(
    "Temporal attention",
    "TA / TAPE: the per-pixel T×T weights of this clip averaged over pixels. GTA: the learned, input-independent "
    "M̂_P and M̂_R per group and head, and mean |M̂| over groups and heads (the paper's Fig. 5; darker is larger).",
)
query = ctx.query

for index, result, record in ui.block_columns(ctx):
    matrices = temporal_matrices(record)
    if not matrices:
        st.info(f"Block {query.block} has no temporal attention (spatial or space-time only).")
    for m, (label, matrix) in enumerate(matrices.items()):
        ui.chart(matrix_figure(matrix, f"{query.block}: {label}"), key=f"matrix_{index}_{m}")
    for m, (label, heads) in enumerate(gta_head_matrices(record).items()):
        ui.chart(
            head_grid_figure(heads, f"{query.block}: {label}, group × head (signed)"), key=f"heads_{index}_{m}"
        )

st.divider()
st.markdown("#### Compare two checkpoints")
st.caption("E.g. GTA trained on a temporal dataset against GTA trained on an appearance dataset: same block, same matrix.")
sources = {
    f"{r.name} · {block} · {label}": (r, matrix)
    for r in ctx.results
    for block, record in r.capture.records.items()
    for label, matrix in temporal_matrices(record).items()
}
if len(sources) < 2:
    st.info("Choose checkpoints with temporal matrices (TA, TAPE, DNL, GTA) to compare.")
    st.stop()
labels = list(sources)


def counterpart(label: str) -> str | None:
    """The same block and matrix in another checkpoint, if any."""
    name, rest = label.split(" · ", 1)
    return next((l for l in labels if l.split(" · ", 1)[1] == rest and not l.startswith(name + " ·")), None)


# Default: the first matrix of the query block that another checkpoint also has (e.g. M̂_P of two GTAs).
in_block = [l for l in labels if f" · {query.block} · " in l] or labels
first = next((l for l in in_block if counterpart(l)), in_block[0])
second = counterpart(first) or next(l for l in labels if l != first)
pick_a, pick_b = st.columns(2)
label_a = pick_a.selectbox("A", labels, index=labels.index(first), key="compare_a")
label_b = pick_b.selectbox("B", labels, index=labels.index(second), key="compare_b")
(result_a, a), (result_b, b) = sources[label_a], sources[label_b]
col_a, col_b, col_diff = st.columns(3)
with col_a:
    st.caption(f"A: dataset {result_a.config.dataset.get('name') or '?'}")
    ui.chart(matrix_figure(a, "A"), key="compare_fig_a")
with col_b:
    st.caption(f"B: dataset {result_b.config.dataset.get('name') or '?'}")
    ui.chart(matrix_figure(b, "B"), key="compare_fig_b")
with col_diff:
    if a.shape != b.shape:
        st.warning(f"A is {a.shape[0]}×{a.shape[1]} and B is {b.shape[0]}×{b.shape[1]}: no difference to draw.")
    else:
        st.caption("A − B (blue: A larger, red: B larger)")
        ui.chart(difference_figure(a, b, "A − B"), key="compare_fig_diff")
