"""The compare report: numbers over per-clip logits, no model and no files.

For N clips and two checkpoints A and B:

- right: the top-1 class (highest logit, ties to the lower class index, as in
  `evaluate`) is the label.
- agreement: the share of clips on which A and B predict the same class.
- both right, only A right, only B right, both wrong: clip counts; they add up
  to N, and acc(A) − acc(B) = (only A right − only B right) / N.
- time-reversal confusion: a wrong clip whose prediction is its class's
  time-reversal pair (reverse_pairs.json). A "pretending" class is its own
  pair, so its errors never count.
- temporal statistics of a TA / TAPE block: each clip's T×T weights averaged
  over pixels, then over the clips of a class. Within-class spread: the mean
  over clips of ‖A_clip − A_class‖ / ‖A_class‖ (Frobenius norms); between-class
  spread: the mean over classes of ‖A_class − Ā‖ / ‖Ā‖ (Ā: the mean of the class
  matrices). GTA's M̂ is the same for every clip: both spreads are 0 by design.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .evaluate import compute_metrics

DIGITS = 6          # matrices in the report are rounded: the JSON stays small, far below any visible change


def top1(logits: np.ndarray) -> np.ndarray:
    """(N,) top-1 class per clip, ties to the lower index (evaluate's rule)."""
    return np.argsort(-logits, axis=1, kind="stable")[:, 0]


def top1_probability(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    return probs[np.arange(len(logits)), top1(logits)]


def reversal_confusions(pred: np.ndarray, labels: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(N,) bool: wrong, and the prediction is the label's time-reversal pair (never for a palindrome class)."""
    twin = pairs[labels]
    return (pred != labels) & (pred == twin) & (twin != labels)


def pairwise_counts(a: str, b: str, pred_a: np.ndarray, pred_b: np.ndarray, labels: np.ndarray) -> dict:
    right_a, right_b = pred_a == labels, pred_b == labels
    n = len(labels)
    return {
        "a": a, "b": b,
        "agreement": float((pred_a == pred_b).mean()),
        "both_right": int((right_a & right_b).sum()),
        "only_a_right": int((right_a & ~right_b).sum()),
        "only_b_right": int((~right_a & right_b).sum()),
        "both_wrong": int((~right_a & ~right_b).sum()),
        "accuracy_gap": float((right_a.sum() - right_b.sum()) / n),      # acc(A) − acc(B)
    }


def _rounded(matrix: np.ndarray) -> list:
    return np.round(matrix.astype(np.float64), DIGITS).tolist()


def class_statistics(per_clip: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict:
    """Per-class means of (N, T, T) per-clip matrices and their within / between-class spreads."""
    means, within = {}, []
    for index, name in enumerate(class_names):
        members = per_clip[labels == index]
        if not len(members):
            continue
        mean = members.mean(axis=0)
        means[name] = mean
        within += list(np.linalg.norm(members - mean, axis=(1, 2)) / np.linalg.norm(mean))
    grand = np.mean(list(means.values()), axis=0)
    between = [np.linalg.norm(m - grand) / np.linalg.norm(grand) for m in means.values()]
    return {
        "per_class": {name: _rounded(m) for name, m in means.items()},
        "clips": {name: int((labels == class_names.index(name)).sum()) for name in means},
        "within_class_spread": float(np.mean(within)),
        "between_class_spread": float(np.mean(between)),
    }


def _checkpoint_metrics(logits, labels, class_names, pairs) -> dict:
    metrics = compute_metrics(logits, labels, class_names)
    pred = top1(logits)
    metrics["errors"] = int((pred != labels).sum())
    if pairs is not None:
        metrics["reversal_confusions"] = int(reversal_confusions(pred, labels, pairs).sum())
    return metrics


def _temporal_stats(temporal: dict, global_matrices: dict, labels, class_names) -> dict:
    """{checkpoint: {block: statistics}}: TA / TAPE per class; GTA's global mean |M̂| once."""
    out = {}
    for name in temporal:
        blocks = {}
        for block, (kind, per_clip) in temporal[name].items():
            blocks[block] = {"kind": kind, **class_statistics(per_clip, labels, class_names)}
        for block, matrices in global_matrices.get(name, {}).items():
            blocks[block] = {"kind": "GTA", "global": {label: _rounded(m) for label, m in matrices.items()},
                             "within_class_spread": 0.0, "between_class_spread": 0.0}
        if blocks:
            out[name] = blocks
    return out


def build_report(
    names: list[str],
    class_names: list[str],
    labels: np.ndarray,
    logits: list[np.ndarray],
    clips: list[tuple[str, str]],
    pairs: np.ndarray | None,
    temporal: dict,
    global_matrices: dict,
) -> dict:
    """The report `compare` prints as JSON.

    logits: one (N, C) array per checkpoint, columns in `class_names` order;
    clips: (id, video path) per clip; pairs: (C,) class -> its time-reversal
    pair, or None; temporal: {checkpoint: {block: (kind, (N, T, T))}};
    global_matrices: {checkpoint: {block: {"M̂_P": (T, T), ...}}}.
    """
    preds = [top1(l) for l in logits]
    scores = [top1_probability(l) for l in logits]
    metrics = {name: _checkpoint_metrics(l, labels, class_names, pairs) for name, l in zip(names, logits)}
    confused = [reversal_confusions(p, labels, pairs) for p in preds] if pairs is not None else None
    rows = []
    for i, (clip_id, video) in enumerate(clips):
        row = {
            "id": clip_id, "video": video, "label": class_names[labels[i]],
            "predictions": [class_names[p[i]] for p in preds],
            "scores": [round(float(s[i]), DIGITS) for s in scores],
            "correct": [bool(p[i] == labels[i]) for p in preds],
        }
        if confused is not None:
            row["reversal_confusion"] = [bool(c[i]) for c in confused]
        rows.append(row)
    return {
        "checkpoints": list(names),
        "class_names": list(class_names),
        "num_clips": int(len(labels)),
        "reverse_pairs": None if pairs is None else {c: class_names[pairs[i]] for i, c in enumerate(class_names)},
        "metrics": metrics,
        "per_class": {
            c: {"support": metrics[names[0]]["class_support"][c],
                "accuracy": [metrics[name]["per_class_accuracy"][c] for name in names]}
            for c in class_names
        },
        "pairwise": [
            pairwise_counts(names[i], names[j], preds[i], preds[j], labels)
            for i in range(len(names)) for j in range(i + 1, len(names))
        ],
        "clips": rows,
        "temporal_stats": _temporal_stats(temporal, global_matrices, labels, class_names),
    }


def only_right(report: dict, a: str, b: str, which: str) -> list[dict]:
    """Clips where only A is right ("only A right"), only B ("only B right"), or neither ("both wrong")."""
    ia, ib = report["checkpoints"].index(a), report["checkpoints"].index(b)
    wanted = {"only A right": (True, False), "only B right": (False, True), "both wrong": (False, False)}[which]
    return [clip for clip in report["clips"] if (clip["correct"][ia], clip["correct"][ib]) == wanted]


# ---------------------------------------------------------------- text


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def text_report(report: dict, max_ids: int = 8) -> str:
    names = report["checkpoints"]
    lines = [f"compare: {len(names)} checkpoint(s) on {report['data']} ({report['num_clips']} clips)", ""]
    width = max(len(n) for n in names + ["checkpoint"])
    lines.append(f"{'checkpoint':<{width}}  {'top-1 %':>7}  {'top-5 %':>7}  {'errors':>6}  time-reversal confusions")
    for name in names:
        m = metrics = report["metrics"][name]
        reversal = (f"{m['reversal_confusions']} of {m['errors']} errors" if "reversal_confusions" in metrics
                    else "- (no reverse_pairs.json)")
        lines.append(f"{name:<{width}}  {_pct(m['top1']):>7}  {_pct(m['top5']):>7}  {m['errors']:>6}  {reversal}")
    class_width = max(len(c) for c in report["class_names"])
    lines += ["", "per-class accuracy (%): " + ", ".join(f"[{i}] {n}" for i, n in enumerate(names))]
    lines.append(f"{'class':<{class_width}}  {'n':>4}  " + "  ".join(f"{f'[{i}]':>6}" for i in range(len(names))))
    for name, row in report["per_class"].items():
        values = "  ".join(f"{_pct(a):>6}" for a in row["accuracy"])
        lines.append(f"{name:<{class_width}}  {row['support']:>4}  {values}")
    if report["pairwise"]:
        lines += ["", "pairs (A vs B)"]
    for pair in report["pairwise"]:
        lines.append(
            f"{pair['a']} vs {pair['b']}: agree {_pct(pair['agreement'])}%, both right {pair['both_right']}, "
            f"only A right {pair['only_a_right']}, only B right {pair['only_b_right']}, both wrong "
            f"{pair['both_wrong']}; acc(A) − acc(B) = {100 * pair['accuracy_gap']:+.1f} points"
        )
        for which in ("only A right", "only B right"):
            ids = [clip["id"] for clip in only_right(report, pair["a"], pair["b"], which)]
            if ids:
                more = f" … (+{len(ids) - max_ids})" if len(ids) > max_ids else ""
                lines.append(f"    {which}: {', '.join(ids[:max_ids])}{more}")
    stats_lines = [
        f"{name} {block} ({stats['kind']}): within-class spread {stats['within_class_spread']:.3f}, "
        f"between-class {stats['between_class_spread']:.3f}"
        for name, blocks in report["temporal_stats"].items() for block, stats in blocks.items() if "per_class" in stats
    ]
    if stats_lines:
        lines += ["", "TA weights averaged over pixels, per class (GTA's M̂: 0 and 0, the same for every clip)"]
    return "\n".join(lines + stats_lines)

