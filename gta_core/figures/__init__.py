"""Pure plotly figure builders, used by the app (app/views) and by `gta_core.export`.

(arrays from `gta_core.views` / dataclasses of `gta_core.interpret`, options) -> go.Figure;
no Streamlit, no model maths. `attention` draws what the blocks attend to (the
paper's figures), `interpretation` the attributions, order probes and knockouts,
`dataset` a compare report (per-class accuracy, confusions, per-class TA weights),
`query_dependence` the query-dependence scores and the rows of far-apart queries.
"""
from .attention import (
    difference_figure,
    frame_strip_figure,
    head_grid_figure,
    matrix_figure,
    overlay,
    picker_figure,
    png_uri,
    regions_figure,
    spacetime_figure,
    spatial_figure,
    swapped_figure,
    temporal_weights_figure,
    topk_figure,
    wrap_label,
)
from .query_dependence import dependence_bars_figure, footprint_figure, query_rows_figure
from .dataset import class_matrices_figure, confusion_figure, gap_order, per_class_figure, short_class_name
from .interpretation import (
    attribution_curves,
    attribution_strip_figure,
    knockout_figure,
    occlusion_figure,
    order_probe_figure,
    temporal_importance_figure,
)

__all__ = [
    "attribution_curves", "attribution_strip_figure", "class_matrices_figure", "confusion_figure",
    "dependence_bars_figure", "footprint_figure", "query_rows_figure",
    "difference_figure", "frame_strip_figure", "gap_order", "per_class_figure", "short_class_name",
    "head_grid_figure", "knockout_figure", "matrix_figure", "occlusion_figure", "order_probe_figure", "overlay",
    "picker_figure", "png_uri", "regions_figure", "spacetime_figure", "spatial_figure", "swapped_figure",
    "temporal_importance_figure", "temporal_weights_figure", "topk_figure", "wrap_label",
]
