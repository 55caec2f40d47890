"""The query-dependence score: hand-computed small cases, 0 by construction, high for identity-like attention."""
from __future__ import annotations

import math

import pytest
import torch

from gta_core import capture
from gta_core.models import create_model
from gta_core.query_dependence import Problem, block_scores, js_bits, part_labels, query_rows, score
from gta_core.records import DecoupledRecord, SoftmaxRows, TemporalMaps
from tests.helpers import activate_blocks, one_thread, tiny_clip  # noqa: F401
from tests.test_lazy_records import one_forward, r2d

pytestmark = pytest.mark.usefixtures("one_thread")


def problem(rows: torch.Tensor) -> Problem:
    return Problem(lambda index: rows[index], rows.shape[0])


def test_two_one_hot_rows_by_hand():
    """Rows (1, 0) and (0, 1): r̄ = (½, ½); JS(e₁, r̄) = ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2 2) bits;
    every weight is ½ away from both r̄ and the grand mean ½, so the mean row explains none of the variance."""
    result = score([problem(torch.eye(2))])
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert result.js == pytest.approx(expected, abs=1e-9) and result.js == pytest.approx(0.3113, abs=1e-4)
    assert result.explained == pytest.approx(0.0, abs=1e-12) and result.queries == 2


def test_identity_like_attention_scores_high_and_chunks_do_not_matter():
    """16 queries, each on its own key: JS(e_q, uniform) = ½·log2(32/17) + ½·((1/16)·log2(2/17) + 15/16) ≈ 0.829."""
    rows = torch.eye(16)
    expected = 0.5 * math.log2(32 / 17) + 0.5 * (math.log2(2 / 17) / 16 + 15 / 16)
    for chunk in (3, 16, 1024):
        result = score([problem(rows)], chunk=chunk)
        assert result.js == pytest.approx(expected, abs=1e-9) and result.js > 0.8
        assert result.explained == pytest.approx(0.0, abs=1e-12)


def test_identical_rows_score_zero_and_a_mixture_by_hand():
    row = torch.tensor([0.7, 0.2, 0.1])
    same = score([problem(row.repeat(5, 1))])
    assert same.js == pytest.approx(0.0, abs=1e-12) and same.explained == pytest.approx(1.0)
    # Rows (0.6, 0.4) and (0.4, 0.6): r̄ = (½, ½) = the grand mean, so again nothing is explained.
    rows = torch.tensor([[0.6, 0.4], [0.4, 0.6]])
    result = score([problem(rows)])
    assert result.explained == pytest.approx(0.0, abs=1e-12)
    assert result.js == pytest.approx(float(js_bits(rows.double(), torch.full((2,), 0.5, dtype=torch.float64))[0]))
    # Rows (1, 0, 0) and (½, ½, 0): r̄ = (¾, ¼, 0), m = ⅓; residual 4·(¼)² = ¼;
    # total (⅔)² + 2·(⅓)² + 2·(⅙)² + (⅓)² = 5/6; explained 1 − ¼ / (5/6) = 0.7.
    rows = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    assert score([problem(rows)]).explained == pytest.approx(0.7, abs=1e-12)


def test_signed_rows_report_only_the_variance():
    rows = torch.tensor([[0.5, -0.5], [-0.5, 0.5], [0.5, -0.5]])
    result = score([problem(rows)], distributions=False)
    assert result.js is None and "JS is undefined" in result.note
    assert 0 <= result.explained < 1


def test_temporal_maps_the_same_at_every_pixel_score_zero():
    """TA rows that depend on the query step only (as GTA's M̂ does) are query-independent: 0, 1."""
    matrix = torch.softmax(torch.randn(4, 4), dim=-1)            # rows differ by query step
    rows = SoftmaxRows(1.0, dense=matrix.expand(3 * 5, 4, 4).clone())      # N = B·H·W pixels, T' × T'
    record = DecoupledRecord("b", None, TemporalMaps.from_rows(rows, (3, 5)), False, False, "ta")
    result = block_scores(record)["TA"]
    assert result.js == pytest.approx(0.0, abs=1e-12) and result.explained == pytest.approx(1.0)
    assert result.queries == 4 * 3 * 5


@pytest.fixture(scope="module")
def tiny(request):
    return {
        block: activate_blocks(create_model(f"demo_r2d18_{block}", num_classes=5, width_multiplier=0.125,
                                            num_frames=4, input_size=64).eval())
        for block in ("nl", "gta", "dnl")
    }


def test_an_nl_block_made_query_independent_scores_zero(tiny):
    """θ = a constant (zero weights, random bias): every query's scores θφᵀ are the same row."""
    model = tiny["nl"]
    clip = tiny_clip(batch=1, frames=4, size=64)
    name, block = next(iter(model.temporal_blocks().items()))
    with torch.no_grad():                                        # peaked rows (random init is nearly uniform)
        block.query.weight.mul_(300)
    live = block_scores(capture(model, clip).records[name])["NL"]
    assert live.js > 0.01 and live.explained < 0.99
    with torch.no_grad():
        block.query.weight.zero_()
        block.query.bias.normal_()
    flat = block_scores(capture(model, clip).records[name])["NL"]
    assert flat.js == pytest.approx(0.0, abs=1e-9) and flat.explained == pytest.approx(1.0, abs=1e-9)


def test_gta_parts_and_rows(tiny):
    result = capture(tiny["gta"], tiny_clip(batch=1, frames=4, size=64))
    name, record = next(iter(result.records.items()))
    scores = block_scores(record)
    assert set(scores) == {"SA", "GTA M̂", "GTA regions"}
    assert scores["GTA M̂"].analytic and scores["GTA M̂"].js == 0.0 and scores["GTA M̂"].explained == 1.0
    regions = scores["GTA regions"]
    assert 0 < regions.js < 1 and "strength" in regions.note
    height, width = record.regions.shape[-2:]
    assert regions.queries == 4 * 4 * height * width             # T² (query step, key step) problems of H·W pixels
    picked = query_rows(record, [(0, 0, 0), (1, 1, 1)])
    assert picked["part"] == "SA" and picked["rows"][0].sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind, nl_mode", [("nl", None), ("nl", "dot_product"), ("dnl", None), ("tape", None),
                                           ("gta", None)])
def test_scores_read_from_lazy_rows_in_chunks_equal_the_dense_weights(kind, nl_mode):
    """Every part's score from lazy records (rows formed from q and k, a chunk of queries at a time, the
    dense maps never formed) equals the score of the same forward's dense weights, for both clips."""
    model, clip = r2d(kind)                       # R2D-18 ×0.125, batch 2, one block on a 7×9 grid
    if nl_mode:
        torch.manual_seed(3)
        model = activate_blocks(create_model("demo_r2d18_nl", num_classes=5, width_multiplier=0.125, num_frames=4,
                                             block_positions=(("res3", (1,)),), nl_mode=nl_mode), seed=1).eval()
    captures = one_forward(model, clip)
    for name, lazy in captures[False].records.items():
        dense = captures[True].records[name]
        labels = part_labels(model.temporal_blocks()[name])
        for batch in range(2):
            reference = block_scores(dense, batch)
            for chunk in (5, 1024):
                scores = block_scores(lazy, batch, chunk=chunk)
                assert list(scores) == list(reference) == labels
                for part, value in scores.items():
                    assert value.explained == pytest.approx(reference[part].explained, abs=1e-5)
                    signed = nl_mode == "dot_product" and part == "NL"
                    assert (value.js is None) == (reference[part].js is None) == signed
                    if not signed:
                        assert value.js == pytest.approx(reference[part].js, abs=1e-5)


def test_a_clips_test_views_are_scored_one_by_one_and_averaged(tiny):
    """Multi-view pipelines give (B, V, 3, T, H, W): each view is captured and a clip's score is the views' mean."""
    from gta_core.query_dependence_cli import scores_per_clip

    model = tiny["dnl"]
    views = tiny_clip(batch=2, frames=4, size=64)                 # the two views of one clip
    (merged,) = scores_per_clip(model, views[None])
    alone = [scores_per_clip(model, view[None])[0] for view in views]
    for block, parts in merged.items():
        for part, value in parts.items():
            assert value.js == pytest.approx((alone[0][block][part].js + alone[1][block][part].js) / 2, abs=1e-9)
            assert value.explained == pytest.approx(
                (alone[0][block][part].explained + alone[1][block][part].explained) / 2, abs=1e-9)
            assert value.queries == 2 * alone[0][block][part].queries
    assert alone[0] != alone[1]                                   # the views differ, so the mean is a real one
