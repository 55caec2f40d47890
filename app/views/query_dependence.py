"""Query dependence (GCNet's question): how much does each block's attention change with the query?"""
import streamlit as st

from app import ui
from gta_core.figures import dependence_bars_figure, query_rows_figure
from gta_core.query_dependence import far_apart_queries, query_rows
from gta_core.views import dependence_label, step_label, step_of

ctx = ui.page_context(
    "Query dependence",
    "Per block: the mean Jensen–Shannon divergence (bits) between each query's attention row and the mean row of "
    "its query step, and the fraction of the weights' variance that mean row explains. 0 bits / 100 % means every "
    "query attends alike (global context, as GCNet found for NL); GTA's learned M̂ is 0 by construction. "
    "Below, the rows of a few far-apart queries of the picked block, on one colour scale. docs/query-dependence.md "
    "defines the score.",
)
query = ctx.query
scores = {result.name: {name: ui.dependence(result, record) for name, record in result.capture.records.items()}
          for result in ctx.results}
table = {model: {f"{block} · {part}": (score.js, score.explained)
                 for block, parts in blocks.items() for part, score in parts.items()}
         for model, blocks in scores.items()}
if not any(table.values()):
    st.info("None of the chosen models has attention blocks to score.")
    st.stop()
ui.chart(dependence_bars_figure(table), key="qd_bars")
for index, result, record in ui.block_columns(ctx):
    if not scores[result.name][record.name]:
        st.caption(f"{record.name}: this block has no attention rows to score.")
        continue
    st.caption(f"{record.name}: {dependence_label(scores[result.name][record.name])}")
    step = step_of(record, ui.timeline(result, record, query).frame)
    queries = far_apart_queries(record.query_grid(), step)
    picked = query_rows(record, queries)
    titles = [f"({y}, {x})" for _, y, x in queries]
    ui.chart(query_rows_figure(picked["rows"], titles, signed=not picked["is_distribution"],
                               title=f"{picked['part']} rows of 4 queries, {step_label(record, step)}"),
             key=f"qd_rows_{index}")
