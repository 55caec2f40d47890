"""NL and SA records on an odd 7×9 feature grid, where ceil and floor key pooling differ.

Ceil (ours) gives 4×5 keys, the last row and column pooling one cell; floor
(MMAction2's and TSM's NL) gives 3×4 keys and leaves the last row and column
out. Each expected weight is a softmax written out here: the query from the
block's own 1×1 weights, every key the max over exactly the cells the record's
`key_spans` name. So the spans are checked as what the block pooled, not as
what `pooled_spans` says.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gta_core import capture, create_model
from tests.helpers import activate_blocks, one_thread, project  # noqa: F401  (module fixture)

B, T, GRID = 2, 2, (7, 9)
CLIP = torch.randn(B, 3, T, 8 * GRID[0], 8 * GRID[1], generator=torch.Generator().manual_seed(0))
QUERIES = [(0, 0, 0, 0), (1, 1, 6, 8), (1, 0, 3, 7)]        # (b, t, y, x); (6, 8) is the odd corner
SPANS = {True: (((0, 2), (2, 4), (4, 6), (6, 7)), ((0, 2), (2, 4), (4, 6), (6, 8), (8, 9))),
         False: (((0, 2), (2, 4), (4, 6)), ((0, 2), (2, 4), (4, 6), (6, 8)))}


def tiny(kind: str, ceil: bool):
    """R2D-18 ×0.125, one block after res3.1 (7×9 input grid for CLIP), pooling keys with ceil or floor."""
    torch.manual_seed(3)
    model = create_model(f"demo_r2d18_{kind}", num_classes=5, width_multiplier=0.125, num_frames=T,
                         block_positions=(("res3", (1,)),), nl_pool_ceil=ceil)
    block = model.temporal_blocks()["res3.1"]
    attention = block if kind == "nl" else block.spatial
    if kind == "sa" and not ceil:    # our SA always pools with ceil; floor as an imported block would
        attention.pool = nn.MaxPool2d(2, 2, ceil_mode=False)
    return activate_blocks(model, seed=1).eval(), attention


def pooled_by_hand(keys: torch.Tensor, spans) -> torch.Tensor:
    """(C', H, W) -> (C', h, w): key cell (i, j) is the max over rows spans[0][i] × columns spans[1][j]."""
    rows, cols = spans
    return torch.stack([torch.stack([keys[:, r0:r1, c0:c1].amax(dim=(1, 2)) for c0, c1 in cols], dim=-1)
                        for r0, r1 in rows], dim=-2)


def run(model, attention):
    seen = {}
    handle = attention.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0].detach()))
    try:
        record = capture(model, CLIP).records["res3.1"]
    finally:
        handle.remove()
    return record, seen["x"]


@pytest.mark.parametrize("ceil", [True, False], ids=["ceil", "floor"])
def test_nl_on_an_odd_grid(ceil):
    model, block = tiny("nl", ceil)
    record, x = run(model, block)
    assert record.grid == GRID and record.key_grid == (len(SPANS[ceil][0]), len(SPANS[ceil][1]))
    assert record.key_spans == SPANS[ceil]
    keys = torch.stack([pooled_by_hand(k, record.key_spans) for k in project(block.key, x)])   # (B·T, C', h, w)
    for b, t, y, xq in QUERIES:
        query = project(block.query, x)[b * T + t, :, y, xq]
        clip_keys = torch.cat([keys[b * T + s].flatten(1) for s in range(T)], dim=1)           # (C', T·h·w)
        expected = torch.softmax(query @ clip_keys / math.sqrt(block.inner_channels), dim=0)
        torch.testing.assert_close(record.row(t, y, xq, batch=b).flatten(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("ceil", [True, False], ids=["ceil", "floor"])
def test_sa_on_an_odd_grid(ceil):
    model, sa = tiny("sa", ceil)
    record, x = run(model, sa)
    maps = record.spatial
    assert maps.grid == GRID and maps.key_grid == (len(SPANS[ceil][0]), len(SPANS[ceil][1]))
    assert maps.key_spans == SPANS[ceil]
    for b, t, y, xq in QUERIES:
        query = project(sa.projections.query, x)[b * T + t, :, y, xq]
        frame_keys = pooled_by_hand(project(sa.projections.key, x)[b * T + t], maps.key_spans)   # (C', h, w)
        expected = torch.softmax(query @ frame_keys.flatten(1) / math.sqrt(sa.inner_channels), dim=0)
        torch.testing.assert_close(maps.map_at(t, y, xq, batch=b).flatten(), expected, rtol=1e-4, atol=1e-6)
