"""Lazy records (q, k and each row's log-sum-exp) give every view the numbers the dense weights give.

For each block kind on a 2D (R2D-18) and a 3D (SlowFast-R50) model, batch 2
and a non-square odd 7×9 feature grid at res3 (and 4×5 at res4 of
SlowFast), every number a view shows (Query point's space-time, spatial,
temporal and GTA rows at several queries; Temporal attention's matrices; the
comparison summaries; Regions; compare's per-clip T'×T' statistic) is
computed from the dense weights (the softmax's own output) and from lazy rows
(formed on demand), both made by the blocks from one forward pass (so that a
later block sees the same input): they agree to 1e-5 at float32. Separate
`capture(..., dense=True)` and `capture(..., dense=False)` runs (explicit
softmax vs torch's flash kernel in the forward) agree to 1e-4. Stored as float16 (`--records-dtype float16`) they agree within
FLOAT16_ATOL, the bound docs/records.md states.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gta_core import capture, create_model
from gta_core.layers import Recorder
from gta_core.records import Capture
from gta_core.views import comparison_matrices, query_view, region_view, temporal_matrices
from tests.helpers import activate_blocks, calibrate_norms, one_thread  # noqa: F401  (module fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

B = 2
KINDS = ["nl", "sa", "ta", "tape", "dnl", "gta"]
# (frame, fy, fx): corners, the centre and an off-centre cell.
QUERIES = [(0, 0.0, 0.0), (1, 0.99, 0.99), (2, 0.5, 0.5), (3, 0.3, 0.8)]
# float16 storage: |Δ| ≤ FLOAT16_ATOL + 1e-3·|value| (GTA's region strengths are ~80). A lazy row
# softmax(q·kᵀ·scale) carries the rounding of q and k (2⁻¹¹ relative) times the scores' size: at most
# 7.5e-3 measured (SlowFast res4's NL, whose random activated blocks give scores in the tens).
FLOAT16_ATOL = 1e-2


def r2d(kind: str):
    """R2D-18 ×0.125, 4 frames, one block after res3.1, whose grid is 7×9 for a 56×72 crop."""
    torch.manual_seed(3)
    model = create_model(f"demo_r2d18_{kind}", num_classes=5, width_multiplier=0.125, num_frames=4,
                         gta_groups=2, block_positions=(("res3", (1,)),))
    clip = torch.randn(B, 3, 4, 56, 72, generator=torch.Generator().manual_seed(0))
    return activate_blocks(model, seed=1).eval(), clip


def slowfast(kind: str):
    """SlowFast-R50 ×0.125, 16 frames (4 Slow steps), blocks at res3 (7×9) and res4 (4×5) for 56×72."""
    torch.manual_seed(0)
    model = create_model("slowfast_r50_nl", block=kind, num_classes=5, width_multiplier=0.125, num_frames=16,
                         gta_groups=2)
    clip = torch.randn(B, 3, 16, 56, 72, generator=torch.Generator().manual_seed(0))
    model = calibrate_norms(model, torch.randn(B, 3, 16, 56, 72, generator=torch.Generator().manual_seed(1)))
    return activate_blocks(model, seed=1).eval(), clip


def view_numbers(cap) -> dict:
    """Every number the views show, by (block, batch, what)."""
    out = {}
    for name, record in cap.records.items():
        clip_matrix = record.clip_matrix()
        for b in range(B):
            for query in QUERIES:
                view = query_view(record, *query, batch=b)
                for what in ("spacetime", "spatial", "temporal"):
                    if getattr(view, what) is not None:
                        out[(name, b, query, what)] = getattr(view, what)
                out.update({(name, b, query, label): row for label, row in view.global_rows.items()})
            out.update({(name, b, "temporal", k): v for k, v in temporal_matrices(record, b).items()})
            out.update({(name, b, "compare", k): v for k, v in comparison_matrices(record, b).items()})
            regions = region_view(record, b)
            if regions is not None:
                out[(name, b, "regions")] = regions.maps
                out[(name, b, "strength")] = regions.strength
            if clip_matrix is not None:
                out[(name, b, "clip_matrix")] = clip_matrix[b].numpy()
    return out


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max()) for k in a)


def one_forward(model, clip) -> dict[bool | None, Capture]:
    """Dense, lazy and automatic records of one forward pass, made by each block's own make_record."""
    blocks, recorder = model.temporal_blocks(), Recorder(dense=True)
    try:
        for block in blocks.values():
            block.watch(recorder)
        with torch.inference_mode():
            logits = model(clip)
    finally:
        recorder.eject()
    out = {}
    for mode in (True, False, None):
        recorder.dense = mode
        out[mode] = Capture(logits, {name: block.make_record(recorder, name, B, model.time_spans(name), False)
                                     for name, block in blocks.items()})
    return out


@pytest.mark.parametrize("build", [r2d, slowfast], ids=["r2d", "slowfast"])
@pytest.mark.parametrize("kind", KINDS)
def test_lazy_views_equal_dense_views(build, kind):
    model, clip = build(kind)
    captures = one_forward(model, clip)
    dense, lazy = captures[True], captures[False]
    grids = {record.query_grid() for record in lazy.records.values()}
    assert (7, 9) in grids                                       # the odd, non-square grid is exercised
    reference = view_numbers(dense)
    assert len(reference) >= len(QUERIES) * B
    assert largest_difference(view_numbers(lazy), reference) < 1e-5
    assert largest_difference(view_numbers(captures[None]), reference) < 1e-5
    # Separate runs: the lazy capture's forward uses the flash kernel (with its log-sum-exp).
    separate = capture(model, clip, dense=False)
    torch.testing.assert_close(separate.logits, dense.logits, rtol=1e-4, atol=1e-4)
    separate_numbers = view_numbers(separate)        # GTA's region strengths are ~80: relative there
    assert all(np.allclose(separate_numbers[k], reference[k], rtol=1e-4, atol=1e-4) for k in reference)
    stored_rows = [rows for record in lazy.records.values() for rows in _rows(record)]
    assert stored_rows and all(rows.is_lazy for rows in stored_rows)
    half = lazy.to("cpu", torch.float16)
    assert half.nbytes() < lazy.nbytes()
    halves = view_numbers(half)
    assert all(np.allclose(halves[k], reference[k], rtol=1e-3, atol=FLOAT16_ATOL) for k in reference)


def _rows(record):
    """The SoftmaxRows a record keeps (NL's, SA's, TA's)."""
    for part in (record, getattr(record, "spatial", None), getattr(record, "temporal", None)):
        if part is not None and hasattr(part, "rows"):
            yield part.rows


def test_lazy_nl_record_is_smaller_than_dense():
    """At 16×14×18 queries the NL rows are 8× larger than q, k and the log-sum-exp."""
    torch.manual_seed(0)
    model = activate_blocks(create_model("slowfast_r50_nl", num_classes=5, width_multiplier=0.125, num_frames=64), 1)
    clip = torch.randn(1, 3, 64, 112, 144, generator=torch.Generator().manual_seed(0))
    lazy, dense = capture(model.eval(), clip), capture(model, clip, dense=True)
    assert lazy.nbytes() * 4 < dense.nbytes()
    record = lazy.records["slow.res3.1"]
    torch.testing.assert_close(record.row(9, 13, 17), dense.records["slow.res3.1"].row(9, 13, 17), atol=1e-6, rtol=1e-5)


def test_both_log_sum_exp_kernels_equal_the_explicit_softmax():
    """The CPU flash kernel (also on a permuted view, which it gets wrong unless made contiguous) and the
    chunked fallback (other devices, dtypes, or inputs that need gradients) give softmax(q kᵀ·s) v and its lse."""
    from gta_core.layers.common import _attention_with_logsumexp

    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 8, 50, generator=g).transpose(1, 2)              # (3, 50, 8), not contiguous
    k, v = torch.randn(3, 20, 8, generator=g), torch.randn(3, 20, 8, generator=g)
    scores = q @ k.transpose(1, 2) * 0.3
    expected = (torch.softmax(scores, -1) @ v, torch.logsumexp(scores, -1))
    for query in (q, q.detach().clone().requires_grad_()):                # flash kernel, then the chunked path
        out, lse = _attention_with_logsumexp(query, k, v, 0.3)
        torch.testing.assert_close(out.detach(), expected[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lse.detach(), expected[1], atol=1e-5, rtol=1e-5)


def test_a_column_from_the_log_sum_exp_equals_the_dense_column():
    """Which queries look at key s: exp(q·k_s·scale − lse) per query, with no row formed."""
    model, clip = r2d("nl")
    captures = one_forward(model, clip)
    lazy, dense = captures[False].records["res3.1"].rows, captures[True].records["res3.1"].rows
    for n, s in ((0, 0), (1, 17), (1, lazy.key.shape[1] - 1)):
        torch.testing.assert_close(lazy.column(n, s), dense.column(n, s), atol=1e-6, rtol=1e-5)
