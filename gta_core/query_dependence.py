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
dense N×N map is needed when a record computes rows on demand. The one place
that knows today's record types is `problems_of` (the adapter): re-point it
at another record layout and nothing else changes.

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

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from .records import Capture, DecoupledRecord, GTARecord, NonLocalRecord, SpatialMaps, TemporalMaps

Rows = Callable[[torch.Tensor], torch.Tensor]      # (Q,) query indices -> (Q, K) rows
CHUNK = 1024                                         # queries per chunk: at most CHUNK × K weights at once


@dataclass
class Problem:
    """Queries 0..num_queries-1 whose rows share keys and one mean row (one query step of one block)."""

    rows: Rows
    num_queries: int


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


# --------------------------------------------------------------------------- the adapter to today's records


def _nl_problems(record: NonLocalRecord, batch: int) -> list[Problem]:
    height, width = record.grid
    weights = record.weights[batch]                    # (T·H·W, T·h·w); lazy records: record.row per query
    per_step = height * width
    return [Problem(lambda index, start=t * per_step: weights[start + index], per_step)
            for t in range(record.num_frames)]


def _spatial_problems(maps: SpatialMaps, batch: int) -> list[Problem]:
    weights = maps.weights[batch]                      # (T, H·W, h·w)
    return [Problem(lambda index, t=t: weights[t, index], weights.shape[1]) for t in range(weights.shape[0])]


def _temporal_problems(maps: TemporalMaps, batch: int) -> list[Problem]:
    weights = maps.weights[batch].flatten(0, 1)        # (H·W, T, T): pixel, query step, key step
    return [Problem(lambda index, t=t: weights[index, t], weights.shape[0]) for t in range(weights.shape[1])]


def _region_problems(regions: torch.Tensor, batch: int) -> list[Problem]:
    """Per (query step t, key step s): pixel p's weights over key pixels, Σ_k a_k(p) G_R(s)[k, :]."""
    assign = regions[batch].flatten(-2)                # (T, K, H·W), each region a distribution over pixels
    reads = assign / assign.sum(1, keepdim=True)       # a(p): how pixel p splits over the K regions
    steps = assign.shape[0]
    return [Problem(lambda index, t=t, s=s: reads[t][:, index].T @ assign[s], assign.shape[-1])
            for t in range(steps) for s in range(steps)]


def _region_strength_note(regions: torch.Tensor, batch: int) -> str:
    assign = regions[batch].flatten(-2)                # (T, K, H·W)
    strength = assign.sum(1) * assign.shape[-1] / assign.shape[1]   # (T, H·W): (H·W/K)·Σ_k G_R(t)[k, p]
    return (f"the Region path's strength at a pixel, (H·W/K)·Σ_k G_R[k,p], ranges "
            f"{strength.min():.3g}–{strength.max():.3g} (1 everywhere for uniform regions)")


GTA_GLOBAL_NOTE = "analytic: M̂ is the same at every pixel and for every clip (input- and query-independent)"


def problems_of(record, batch: int = 0) -> dict[str, tuple[list[Problem] | None, bool, str]]:
    """Part label -> (problems, rows are distributions, note); problems None for an analytic 0.

    The one function that reads today's record types (records.py).
    """
    if isinstance(record, NonLocalRecord):
        mode = "" if record.is_distribution else f"{record.mode} NL"
        return {"NL": (_nl_problems(record, batch), record.is_distribution, mode)}
    parts = {}
    if record.spatial is not None:
        parts["SA"] = (_spatial_problems(record.spatial, batch), True, "")
    if isinstance(record, DecoupledRecord) and record.temporal is not None:
        parts["TAPE" if record.positional else "TA"] = (_temporal_problems(record.temporal, batch), True, "")
    if isinstance(record, GTARecord):
        parts["GTA M̂"] = (None, False, GTA_GLOBAL_NOTE)
        if record.regions is not None:
            note = _region_strength_note(record.regions, batch)
            parts["GTA regions"] = (_region_problems(record.regions, batch), True, note)
    return parts


def part_labels(block) -> list[str]:
    """The parts `problems_of` scores for an inserted block module, known before any capture (fixed-width rows)."""
    from .layers import DecoupledAttention, GTABlock, NonLocalBlock

    if isinstance(block, NonLocalBlock):
        return ["NL"]
    labels = ["SA"] if block.spatial is not None else []
    if isinstance(block, DecoupledAttention) and block.temporal is not None:
        labels.append("TAPE" if block.temporal.positional is not None else "TA")
    if isinstance(block, GTABlock):
        labels += ["GTA M̂"] + (["GTA regions"] if block.temporal.region_assign is not None else [])
    return labels


def block_scores(record, batch: int = 0, chunk: int = CHUNK) -> dict[str, Score]:
    """Part label ("NL", "SA", "TA", "TAPE", "GTA M̂", "GTA regions") -> its Score for clip `batch`."""
    out = {}
    for part, (problems, distributions, note) in problems_of(record, batch).items():
        if problems is None:
            out[part] = Score(0.0, 1.0, 0, analytic=True, note=note)
        else:
            out[part] = score(problems, distributions, chunk, note)
    return out


def capture_scores(result: Capture, batch: int = 0) -> dict[str, dict[str, Score]]:
    """Block name -> part -> Score, for every record of a capture."""
    return {name: block_scores(record, batch) for name, record in result.records.items()}


def query_rows(record, queries: list[tuple[int, int, int]], batch: int = 0) -> dict[str, list]:
    """The rows of a few queries (t, y, x) of the block's main part, for the GCNet-style picture.

    Returns {"part", "rows": [(K,) float arrays], "key_shape", "is_distribution"}: NL rows over
    (T, h, w), SA rows over the query step's (h, w), TA rows over the T steps.
    """
    if isinstance(record, NonLocalRecord):
        rows = [record.row(t, y, x, batch) for t, y, x in queries]
        return {"part": "NL", "rows": [r.numpy() for r in rows], "key_shape": tuple(rows[0].shape),
                "is_distribution": record.is_distribution}
    if record.spatial is not None:
        maps = record.spatial
        rows = [maps.map_at(t, y, x, batch) for t, y, x in queries]
        return {"part": "SA", "rows": [r.numpy() for r in rows], "key_shape": maps.key_grid, "is_distribution": True}
    rows = [record.temporal.weights_at(t, y, x, batch) for t, y, x in queries]
    return {"part": "TAPE" if record.positional else "TA", "rows": [r.numpy() for r in rows],
            "key_shape": tuple(rows[0].shape), "is_distribution": True}


def query_grid(record) -> tuple[int, int]:
    """The (H, W) grid a record's queries live on."""
    if isinstance(record, NonLocalRecord):
        return record.grid
    if record.spatial is not None:
        return record.spatial.grid
    return tuple(record.temporal.weights.shape[1:3])


def far_apart_queries(grid: tuple[int, int], step: int, count: int = 4) -> list[tuple[int, int, int]]:
    """`count` (≤ 5) queries of step `step` spread over an (H, W) grid: the four corners' insets and the centre."""
    height, width = grid
    top, left, bottom, right = height // 4, width // 4, height - 1 - height // 4, width - 1 - width // 4
    spots = [(top, left), (bottom, right), (top, right), (bottom, left), (height // 2, width // 2)]
    return [(step, y, x) for y, x in spots[:count]]
