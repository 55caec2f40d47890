"""Temporal attention (paper Fig. 5): TA's averaged weights against GTA's learned matrices."""
import streamlit as st

from app import engine, ui
from gta_core.figures import difference_figure, head_grid_figure, matrix_figure
from gta_core.matrices import correlation, difference_is_meaningful, relative_change, reproducible_seed
from gta_core.views import comparison_matrices, dataset_label, gta_head_matrices, temporal_matrices

ctx = ui.page_context(
    "Temporal attention",
    "TA / TAPE: the per-pixel T×T weights of this clip averaged over pixels. GTA: the learned, input-independent "
    "M̂_P and M̂_R per group and head, and mean |M̂| over groups and heads (the paper's Fig. 5; darker is larger); "
    "with the learned change M̂ − M̂₀ when the checkpoint's initial M̂₀ can be rebuilt from its recorded seed.",
)
query = ctx.query

for index, result, record in ui.block_columns(ctx):
    names = ui.timeline(result, record, query).names
    if names:
        st.caption(f"{record.name}: {len(names)} time steps, " + ", ".join(names[:3]) + ", … (step: input frames)")
    matrices = temporal_matrices(record)
    if not matrices:
        st.info(f"Block {query.block} has no temporal attention (spatial or space-time only).")
    for m, (label, matrix) in enumerate(matrices.items()):
        ui.chart(matrix_figure(matrix, f"{record.name}: {label}", step_names=names), key=f"matrix_{index}_{m}")
    heads = gta_head_matrices(record)
    initial = engine.initial_matrices(result.config) if heads else None
    for m, (label, learned) in enumerate(heads.items()):
        ui.chart(
            head_grid_figure(learned, f"{record.name}: {label}, group × head (signed)", names), key=f"heads_{index}_{m}"
        )
        start = (initial or {}).get(record.name, {}).get(label)
        if start is not None:
            st.caption(
                f"Learned change {label} − {label}₀ (M̂₀ rebuilt from seed {reproducible_seed(result.config)}): "
                f"‖M̂ − M̂₀‖/‖M̂₀‖ = {relative_change(learned, start):.2f}, corr(M̂, M̂₀) = "
                f"{correlation(learned, start):+.2f}."
            )
            ui.chart(
                head_grid_figure(learned - start, f"{record.name}: learned change {label} − {label}₀", names),
                key=f"change_{index}_{m}",
            )
    if heads and initial is None:
        st.caption("No learned change: this checkpoint records no training seed (random or imported weights).")

st.divider()
st.markdown("#### Compare two checkpoints")
st.caption(
    "E.g. GTA trained on a temporal dataset against GTA trained on an appearance dataset: same block, same matrix. "
    "GTA is compared through an invariant summary of M̂ (gta_core.matrices.invariant_summary): |M̂| per group and "
    "head, rescaled so that every group and every head has the same mean norm, averaged over groups and heads, "
    "divided by its mean. It does not change when groups or heads are permuted or when a head's M̂ is scaled and "
    "its output projection W^O scaled back (the model is then the same function), which raw mean |M̂| does. "
    "A and B share one colour scale."
)
sources = {
    f"{r.name} · {block} · {label}": (r, matrix)
    for r in ctx.results
    for block, record in r.capture.records.items()
    for label, matrix in comparison_matrices(record).items()
}
if len(sources) < 2:
    st.info("Choose checkpoints with temporal matrices (TA, TAPE, DNL, GTA) to compare.")
    st.stop()
labels = list(sources)


def counterpart(label: str) -> str | None:
    """The same block and matrix in another checkpoint, if any."""
    name, rest = label.split(" · ", 1)
    return next((l for l in labels if l.split(" · ", 1)[1] == rest and not l.startswith(name + " ·")), None)


def verdict(result_a, result_b) -> None:
    """Is a per-dataset difference larger than the seed-to-seed one? Only then is it called meaningful."""
    dataset_a, dataset_b = (r.config.dataset.get("variant") or r.config.dataset.get("name") for r in (result_a, result_b))
    comparison = engine.matrix_comparison(result_a.path) if result_a.path else None
    meaningful = difference_is_meaningful(comparison, dataset_a, dataset_b)
    if meaningful is None:
        st.caption(
            "Not shown to be a dataset effect: no seed-vs-seed numbers for these two datasets "
            "(`python -m gta_core matrices within-across --write checkpoints/matrix_comparison.json`)."
        )
        return
    within = comparison["within"]
    numbers = (f"corr of the invariant summary within {dataset_a} {within[dataset_a]:+.2f}, within {dataset_b} "
               f"{within[dataset_b]:+.2f} (seed vs seed), across the two {comparison['across']:+.2f}")
    if meaningful:
        st.success(f"A per-dataset difference: {numbers}. Two seeds on one dataset agree more than two datasets do.")
    else:
        st.warning(f"Not a meaningful per-dataset difference: {numbers}. Two seeds on one dataset differ as much as "
                   "two datasets do, so A − B may be seed noise.")


# Default: the first matrix of the query block that another checkpoint also has (e.g. M̂_P of two GTAs).
in_block = [l for l in labels if f" · {query.block} · " in l] or labels
first = next((l for l in in_block if counterpart(l)), in_block[0])
second = counterpart(first) or next(l for l in labels if l != first)
pick_a, pick_b = st.columns(2)
label_a = pick_a.selectbox("A", labels, index=labels.index(first), key="compare_a")
label_b = pick_b.selectbox("B", labels, index=labels.index(second), key="compare_b")
(result_a, a), (result_b, b) = sources[label_a], sources[label_b]
shared = (float(min(a.min(), b.min())), float(max(a.max(), b.max())))
col_a, col_b, col_diff = st.columns(3)
with col_a:
    st.caption(f"A: {result_a.name} · {dataset_label(result_a.config.dataset)}")
    ui.chart(matrix_figure(a, "A", zrange=shared), key="compare_fig_a")
with col_b:
    st.caption(f"B: {result_b.name} · {dataset_label(result_b.config.dataset)}")
    ui.chart(matrix_figure(b, "B", zrange=shared), key="compare_fig_b")
with col_diff:
    if a.shape != b.shape:
        st.warning(f"A is {a.shape[0]}×{a.shape[1]} and B is {b.shape[0]}×{b.shape[1]}: no difference to draw.")
    else:
        st.caption("A − B (blue: A larger, red: B larger)")
        ui.chart(difference_figure(a, b, "A − B"), key="compare_fig_diff")
verdict(result_a, result_b)
