"""GTA's learned global matrices M̂ across checkpoints: what was learned, and how to compare it.

Three questions the Temporal attention view asks of a checkpoint's M̂:

* What did training change? `initial_matrices` rebuilds M̂₀, the matrices a
  checkpoint started from, from its architecture and recorded seed (the trainer
  seeds torch with `seed` right before building the model: `build_model` in
  gta_core/train/build.py), so the view can draw the learned change M̂ − M̂₀ beside M̂.
* How far did it move? `relative_change` = ‖M̂ − M̂₀‖ / ‖M̂₀‖, and `init_correlation`,
  the Pearson correlation of M̂ with the M̂₀ that any seed would give (a checkpoint
  whose M̂ still correlates with its own init shows the random draw, not learning).
* Do two checkpoints differ? Not by comparing raw M̂: a GTA block's output is
  unchanged when groups or heads are permuted (with W_V's and W^O's channels), when
  one head's M̂ is scaled by s and its W^O columns by 1/s, or one group's M̂ by s and
  its W_V rows by 1/s, and the closing BatchNorm absorbs a common scale.
  `invariant_summary` is the (T, T) summary that is blind to all of these:
  |M̂| with each (group, head) matrix rescaled by Sinkhorn-balanced group and head
  factors (unit mean norm per group and per head), averaged over groups and heads,
  divided by its mean. Raw mean |M̂| (the paper's Fig. 5) is not invariant: one
  head scaled up dominates it while the model is the same function.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

MATRIX_NAMES = ("pixel_matrix", "region_matrix")
# Written by `python -m gta_core matrices within-across --write`, read by the app: whether a
# per-dataset difference of the invariant summaries is larger than the seed-to-seed one.
COMPARISON_FILE = "matrix_comparison.json"


def gta_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every M̂ of a model by parameter name, detached, float32 on the CPU."""
    return {
        name.removeprefix("module."): p.detach().float().cpu()
        for name, p in model.named_parameters()
        if name.rsplit(".", 1)[-1] in MATRIX_NAMES
    }


def recorded_seed(config) -> int | None:
    """The seed a checkpoint's training run recorded (top-level provenance "seed", else train_config's)."""
    provenance = config.provenance or {}
    if provenance.get("seed") is not None:
        return int(provenance["seed"])
    seed = (provenance.get("train_config") or {}).get("seed")
    return None if seed is None else int(seed)


def reproducible_seed(config) -> int | None:
    """The seed M̂₀ can be rebuilt from: a trained checkpoint's recorded seed; None for random
    weights (nothing was learned) or a checkpoint without training provenance (e.g. imported)."""
    provenance = config.provenance or {}
    if provenance.get("random_weights") or "train_config" not in provenance:
        return None
    return recorded_seed(config)


def initial_matrices(config, seed: int) -> dict[str, torch.Tensor]:
    """M̂₀: the matrices of a fresh model of this checkpoint config under `torch.manual_seed(seed)`.

    The trainer builds its model right after `torch.manual_seed(cfg.seed)`, and
    `--init-from` copies only backbone weights afterwards, so for the recorded
    seed this is exactly where training started. The global RNG state is restored.
    """
    return gta_matrices(_fresh_model(config, seed))


def _fresh_model(config, seed: int) -> nn.Module:
    """The model a checkpoint config describes, as built right after torch.manual_seed(seed)."""
    from .models.video_net import VideoNet

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return VideoNet(config.model_config())
    finally:
        torch.random.set_rng_state(state)


def initial_block_matrices(config, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """M̂₀ per block as the app draws M̂: {block name: {"M̂_P": (G, N_h, T, T), "M̂_R": ...}}.

    Block names are those of `VideoNet.temporal_blocks()` (the capture's record names).
    """
    model = _fresh_model(config, seed)
    out = {}
    for name, block in model.temporal_blocks().items():
        gta = getattr(block, "global_temporal", None)
        matrices = {
            label: _as_group_head(getattr(gta, attr).detach().numpy())
            for label, attr in (("M̂_P", "pixel_matrix"), ("M̂_R", "region_matrix"))
            if getattr(gta, attr, None) is not None
        }
        if matrices:
            out[name] = matrices
    return out


def _flat(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).ravel()


def correlation(a, b) -> float:
    """Pearson correlation of two equally shaped arrays, flattened."""
    a, b = _flat(a), _flat(b)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def relative_change(matrix, initial) -> float:
    """‖M̂ − M̂₀‖ / ‖M̂₀‖ (Frobenius)."""
    matrix, initial = _flat(matrix), _flat(initial)
    return float(np.linalg.norm(matrix - initial) / np.linalg.norm(initial))


def _as_group_head(matrix) -> np.ndarray:
    """(G, N_h, T, T) view of any M̂ layout: (T, T), (G, T, T) or (G, N_h, T, T)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim == 2:
        return m[None, None]
    if m.ndim == 3:
        return m[:, None]
    return m


def invariant_summary(matrix, iterations: int = 100) -> np.ndarray:
    """(T, T) summary of an M̂ that the block's symmetries leave unchanged.

    matrix: (G, N_h, T, T) indexed [group, head] (or (G, T, T) / (T, T)). With
    n[g, k] = ‖M̂[g, k]‖, Sinkhorn finds a_g, b_k with mean_k a_g n b_k = 1 for every
    group and mean_g a_g n b_k = 1 for every head (the balanced scaling of a positive
    matrix is unique, so it undoes any per-group and per-head rescaling); the summary
    is mean_{g,k} a_g b_k |M̂[g, k]|, which does not depend on the order of groups
    or heads, divided by its mean (the BatchNorm's common scale).
    """
    m = _as_group_head(matrix)
    norms = np.sqrt((m * m).sum(axis=(2, 3))) + 1e-12      # (G, N_h)
    a, b = np.ones(norms.shape[0]), np.ones(norms.shape[1])
    for _ in range(iterations):
        a = 1.0 / (norms * b[None, :]).mean(axis=1)
        b = 1.0 / (a[:, None] * norms).mean(axis=0)
    balanced = np.abs(m) * (a[:, None] * b[None, :])[:, :, None, None]
    summary = balanced.mean(axis=(0, 1))
    return summary / summary.mean()


# ---------------------------------------------------------------- checkpoint-level reports


def init_report(folder, seeds=(0, 1, 2, 3)) -> dict:
    """Per M̂ of a checkpoint: relative change from its own init and corr with fresh inits.

    Returns {"seed": recorded seed, "tensors": {name: {"change": ‖M̂−M̂₀‖/‖M̂₀‖ or None,
    "corr": {seed: corr(M̂, M̂₀(seed))}}}, "max_abs_corr": max over tensors and seeds}.
    """
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(folder)
    seed = recorded_seed(ckpt.config)
    learned = gta_matrices(ckpt.model)
    all_seeds = sorted(set(seeds) | ({seed} if seed is not None else set()))
    inits = {s: initial_matrices(ckpt.config, s) for s in all_seeds}
    tensors = {}
    for name, matrix in learned.items():
        tensors[name] = {
            "change": relative_change(matrix, inits[seed][name]) if seed is not None else None,
            "corr": {s: correlation(matrix, inits[s][name]) for s in all_seeds},
        }
    worst = max(abs(c) for t in tensors.values() for c in t["corr"].values())
    return {"seed": seed, "tensors": tensors, "max_abs_corr": worst}


def pair_correlations(folder_a, folder_b, summary: bool = False) -> dict[str, float]:
    """Per M̂ shared by two checkpoints: corr of the raw tensors, or of their invariant summaries."""
    from .checkpoint import load_checkpoint

    a, b = (gta_matrices(load_checkpoint(f).model) for f in (folder_a, folder_b))
    out = {}
    for name in sorted(set(a) & set(b)):
        x, y = (invariant_summary(a[name]), invariant_summary(b[name])) if summary else (a[name], b[name])
        out[name] = correlation(x, y)
    return out


def within_across(groups: dict[str, list]) -> dict:
    """Invariant-summary correlation within a dataset (seed vs seed) against across datasets.

    groups: {dataset: [checkpoint folders trained on it from different seeds]}.
    Each pair's number is the mean over the M̂ tensors of corr(summary, summary).
    Returns {"within": {dataset: mean over its pairs}, "across": mean over cross pairs,
    "across_max": the largest cross pair, "pairs": [(a, b, value), ...]}.
    """
    pairs = []
    within: dict[str, list[float]] = {}
    across: list[float] = []
    members = [(d, str(f)) for d, folders in groups.items() for f in folders]
    for (da, fa), (db, fb) in itertools.combinations(members, 2):
        value = float(np.mean(list(pair_correlations(fa, fb, summary=True).values())))
        pairs.append((fa, fb, value))
        (within.setdefault(da, []) if da == db else across).append(value)
    return {
        "within": {d: float(np.mean(v)) for d, v in within.items()},
        "across": float(np.mean(across)) if across else float("nan"),
        "across_max": float(np.max(across)) if across else float("nan"),
        "pairs": pairs,
    }


def read_comparison(folder) -> dict | None:
    """The within/across numbers saved beside the checkpoints (COMPARISON_FILE), if any."""
    path = Path(folder) / COMPARISON_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def difference_is_meaningful(comparison: dict | None, dataset_a: str, dataset_b: str) -> bool | None:
    """True when both datasets' seed-vs-seed correlation beats the across-dataset one; None if unknown."""
    if not comparison or dataset_a == dataset_b:
        return None
    within = comparison.get("within", {})
    if dataset_a not in within or dataset_b not in within:
        return None
    return min(within[dataset_a], within[dataset_b]) > comparison["across"]


# ---------------------------------------------------------------- the `matrices` command


def _parse_group(text: str) -> tuple[str, list[str]]:
    dataset, _, folders = text.partition("=")
    if not folders:
        raise argparse.ArgumentTypeError(f"expected DATASET=DIR,DIR,..., got {text!r}")
    return dataset, folders.split(",")


def cmd_matrices(args: argparse.Namespace) -> int:
    if args.action == "init":
        for folder in args.folders:
            report = init_report(folder, seeds=tuple(args.seeds))
            print(f"{folder}: recorded seed {report['seed']}, max |corr(M̂, fresh init)| over seeds "
                  f"{sorted(set(args.seeds) | {report['seed']})} = {report['max_abs_corr']:.3f}")
            for name, t in report["tensors"].items():
                corr = "  ".join(f"s{s}: {c:+.3f}" for s, c in t["corr"].items())
                change = "n/a" if t["change"] is None else f"{t['change']:.2f}"
                print(f"  {name}: ‖M̂−M̂₀‖/‖M̂₀‖ = {change}  corr {corr}")
        if len(args.folders) == 2:
            raw = pair_correlations(*args.folders)
            summary = pair_correlations(*args.folders, summary=True)
            print(f"raw corr(M̂ of {args.folders[0]}, M̂ of {args.folders[1]}): max |corr| = "
                  f"{max(abs(v) for v in raw.values()):.3f}; invariant summaries: mean corr = "
                  f"{np.mean(list(summary.values())):.3f}")
        return 0
    groups = dict(_parse_group(g) for g in args.dataset)
    result = within_across(groups)
    for a, b, value in result["pairs"]:
        print(f"  {a} vs {b}: {value:+.3f}")
    for dataset, value in result["within"].items():
        print(f"within {dataset} (seed vs seed): {value:+.3f}")
    print(f"across datasets: {result['across']:+.3f} (mean over pairs), {result['across_max']:+.3f} (largest pair)")
    if args.write:
        payload = {
            "summary": "invariant_summary (gta_core/matrices.py), corr averaged over the M̂ tensors",
            "groups": groups, "within": result["within"], "across": result["across"],
            "across_max": result["across_max"],
        }
        Path(args.write).write_text(json.dumps(payload, indent=1) + "\n")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("matrices", help="GTA's M̂: change from init, corr with fresh inits, within/across datasets")
    actions = p.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="‖M̂−M̂₀‖/‖M̂₀‖ and corr(M̂, fresh init) per checkpoint (and between two)")
    init.add_argument("folders", nargs="+")
    init.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    across = actions.add_parser("within-across", help="invariant-summary corr within a dataset vs across datasets")
    across.add_argument("--dataset", action="append", required=True, metavar="NAME=DIR,DIR",
                        help="a dataset name and its checkpoints from different seeds (repeat per dataset)")
    across.add_argument("--write", help=f"save the numbers as JSON (the app reads checkpoints/{COMPARISON_FILE})")
    p.set_defaults(func=cmd_matrices)
