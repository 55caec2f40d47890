"""How much does a block's attention change with the query? One score per block part and clip.

GCNet (Cao et al. 2019) found non-local attention maps nearly the same for every
query. This module measures it for any record. A *problem* is a set of queries
whose rows live on the same keys and share one mean row: the query positions
(H·W) of one query time step t. Over a problem's rows r_q (Q, K) and their mean
row r̄ (K,):

* `js`: the mean Jensen–Shannon divergence JS(r_q, r̄) in bits (0 ≤ JS ≤ 1):
  0 when every query attends alike, near 1 for one-hot rows on different keys.
  Undefined for rows that are not distributions (the dot-product NL mode):
  None, and the note says so.
* `explained`: the fraction of the variance of the weights that the mean row
  explains, 1 − Σ_q‖r_q − r̄‖² / Σ_q‖r_q − m‖² (m the problem's grand mean, a
  scalar): 1 when every query's row is r̄, 0 when r̄ is flat while the rows
  are not (identity-like attention). Rows that are all constant count as 1.

Both are pooled over a clip's problems (js: mean over all queries; explained:
summed squares). Grouping by query step means "does *where* the query is in
its frame change what it attends to", the question GCNet asked per image; a
block whose rows depend on the query step alone (GTA's learned M̂) scores 0.

Rows come from `rows(query_indices) -> (Q, K)` in chunks of queries, so no
dense N×N map is ever formed: each record groups its own lazy rows into
problems (`BlockRecord.query_dependence`, beside each block in gta_core/layers/;
`SoftmaxRows.row` forms a chunk of rows from q and k), and this module knows
no block type.

GTA (paper Eq. 5-6): M̂_P and M̂_R are the same at every pixel and for every
clip: their query dependence is 0 by construction (`analytic`). What the
Region path adds does depend on the input and the query: pixel p of step t
reads region k with weight G_R(t)[k, p], and region k at key step s pools key
pixels G_R(s)[k, :]; so p's weights over the key pixels of step s are the
mixture Σ_k a_k(p) G_R(s)[k, :] (a(p) = G_R(t)[:, p] normalised), a
distribution scored here as "GTA regions", and the path's strength at p,
(H·W/K)·Σ_k G_R(t)[k, p], varies with p (its range is in the note). The
temporal profile itself, M̂_R's row t, is the same for every p.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from .layers import DependencePart, Problem
from .records import Capture

CHUNK = 1024                                         # queries per chunk: at most CHUNK × K weights at once


@dataclass
class Score:
    js: float | None          # mean JS(r_q, r̄) in bits; None when rows are not distributions
    explained: float          # fraction of the weights' variance the mean row explains
    queries: int
    analytic: bool = False    # the value follows from the block's maths, not from measured rows
    note: str = ""

    def to_dict(self) -> dict:
        return {"js": self.js, "explained": self.explained, "queries": self.queries,
                "analytic": self.analytic, "note": self.note}


def _chunks(problem: Problem, chunk: int) -> Iterator[torch.Tensor]:
    for start in range(0, problem.num_queries, chunk):
        stop = min(start + chunk, problem.num_queries)
        yield problem.rows(torch.arange(start, stop)).double()


def js_bits(rows: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """(Q, K) rows and a (K,) row, all distributions -> (Q,) Jensen–Shannon divergences in bits."""
    middle = (rows + mean) / 2
    kl_rows = torch.xlogy(rows, rows).sum(-1) - torch.xlogy(rows, middle).sum(-1)
    kl_mean = torch.xlogy(mean, mean).sum(-1) - torch.xlogy(mean, middle).sum(-1)
    return ((kl_rows + kl_mean) / 2 / torch.log(torch.tensor(2.0, dtype=rows.dtype))).clamp(min=0)


def score(problems: Iterable[Problem], distributions: bool = True, chunk: int = CHUNK, note: str = "") -> Score:
    """Pooled query dependence of `problems` (two passes over each one's rows, `chunk` queries at a time)."""
    js_sum, residual, total, queries = 0.0, 0.0, 0.0, 0
    for problem in problems:
        # Pass 1: the mean row r̄ and the grand mean m.
        row_sum = sum(rows.sum(0) for rows in _chunks(problem, chunk))
        mean = row_sum / problem.num_queries
        grand = mean.mean()
        # Pass 2: divergences and squares about r̄ and about m.
        for rows in _chunks(problem, chunk):
            residual += float(((rows - mean) ** 2).sum())
            total += float(((rows - grand) ** 2).sum())
            if distributions:
                js_sum += float(js_bits(rows.clamp(min=0), mean.clamp(min=0)).sum())
        queries += problem.num_queries
    if not queries:
        raise ValueError("no queries to score")
    explained = 1.0 - residual / total if total > 0 else 1.0
    if not distributions:
        note = (note + " " if note else "") + "rows are signed (not distributions): JS is undefined"
    return Score(js_sum / queries if distributions else None, explained, queries, note=note)


# --------------------------------------------------------------------------- what each block says (layers/protocol.py)


def problems_of(record, batch: int = 0) -> dict[str, DependencePart]:
    """Part label -> DependencePart(problems, is_distribution, note); problems None for an analytic 0."""
    return record.query_dependence(batch)


def part_labels(block) -> list[str]:
    """The parts `problems_of` scores for an inserted block module, known before any capture (fixed-width rows)."""
    return block.query_dependence_parts()


def block_scores(record, batch: int = 0, chunk: int = CHUNK) -> dict[str, Score]:
    """Part label ("NL", "SA", "TA", "TAPE", "GTA M̂", "GTA regions") -> its Score for clip `batch`."""
    out = {}
    for label, part in problems_of(record, batch).items():
        if part.problems is None:
            out[label] = Score(0.0, 1.0, 0, analytic=True, note=part.note)
        else:
            out[label] = score(part.problems, part.is_distribution, chunk, part.note)
    return out


def capture_scores(result: Capture, batch: int = 0) -> dict[str, dict[str, Score]]:
    """Block name -> part -> Score, for every record of a capture."""
    return {name: block_scores(record, batch) for name, record in result.records.items()}


ROW_FIELDS = ("spacetime", "spatial", "temporal")     # query_slices fields, in the order a block's main part has them


def query_rows(record, queries: list[tuple[int, int, int]], batch: int = 0) -> dict[str, list]:
    """The rows of a few queries (t, y, x) of the block's main (first) part, for the GCNet-style picture.

    Returns {"part", "rows": [(K,) float arrays], "key_shape", "is_distribution"}: NL rows over
    (T, h, w), SA rows over the query step's (h, w), TA rows over the T steps (the record's
    `query_slices`, one lazy row each).
    """
    parts = problems_of(record, batch)
    if not parts:
        raise ValueError(f"block {record.name} has no attention rows to show")
    label, main = next(iter(parts.items()))
    rows = []
    for t, y, x in queries:
        slices = record.query_slices(t, y, x, batch)
        rows.append(next(slices[field] for field in ROW_FIELDS if field in slices).float().numpy())
    return {"part": label, "rows": rows, "key_shape": tuple(rows[0].shape), "is_distribution": main.is_distribution}


def far_apart_queries(grid: tuple[int, int], step: int, count: int = 4) -> list[tuple[int, int, int]]:
    """`count` (≤ 5) queries of step `step` spread over an (H, W) grid: the four corners' insets and the centre."""
    height, width = grid
    top, left, bottom, right = height // 4, width // 4, height - 1 - height // 4, width - 1 - width // 4
    spots = [(top, left), (bottom, right), (top, right), (bottom, left), (height // 2, width // 2)]
    return [(step, y, x) for y, x in spots[:count]]
