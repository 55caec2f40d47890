"""Evaluation and prediction: `python -m gta_core evaluate` and `predict`.

    python -m gta_core evaluate CHECKPOINT --data DIR [--split validation] [--json]
    torchrun --nproc_per_node 2 -m gta_core evaluate CHECKPOINT --data DIR
    python -m gta_core predict CHECKPOINT VIDEO [--topk 5] [--json]

Evaluation is deterministic: clips are read in test mode (the centre frame of
each TSN segment, the centre crop), the model is in eval mode, and nothing
random is drawn. Reported: top-1, top-5, mean loss, per-class accuracy, the
confusion matrix (rows: true class, columns: predicted), and, when the data
folder has `reverse_pairs.json` (class -> class of its time reversal),
*reversed accuracy*: every clip is played backwards (frame order flipped) and
scored against its pair's label. An order-invariant model (R2D, NL, DNL) gives
a reversed clip the same logits as the clip itself, so on a pair it can score
at most 50% between forward and reversed accuracy together.

Under torchrun the clips are cut into the same batches one process would use
and batch b goes to rank b mod N, without padding; the ranks' logits are
gathered and put back in dataset order. Every batch is computed exactly as in
one process, so the metrics are the same numbers (DistributedSampler would pad
the last shard with repeated clips, which would then count twice).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, load_checkpoint
from .distributed import DeviceError, DistEnv, all_gather_objects, init_distributed, pick_device, shutdown

REVERSE_PAIRS_FILE = "reverse_pairs.json"


# ---------------------------------------------------------------- inference


def batch_indices(num_items: int, batch_size: int) -> list[list[int]]:
    """[0..n) cut into consecutive batches, as a one-process loader would."""
    return [list(range(s, min(s + batch_size, num_items))) for s in range(0, num_items, batch_size)]


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    dataset,
    env: DistEnv = DistEnv(),
    batch_size: int = 16,
    with_reversed: bool = False,
    progress: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Logits of every item of `dataset` in dataset order, on every rank.

    Returns (logits (N, C) float32, labels (N,), reversed logits (N, C) or None).
    Under a process group, rank r computes batches r, r+N, ...; results are gathered.
    """
    model.eval()
    average = getattr(getattr(dataset, "spec", None), "average_views", "prob")
    mine = batch_indices(len(dataset), batch_size)[env.rank::env.world_size]
    rows: list[tuple[list[int], np.ndarray, np.ndarray, np.ndarray | None]] = []
    iterator = progress(mine) if progress else mine
    for batch in iterator:
        items = [dataset[i] for i in batch]
        clips = torch.stack([clip for clip, _ in items]).to(env.device)   # (B, 3, T, H, W) or (B, V, 3, T, H, W)
        labels = np.array([label for _, label in items], dtype=np.int64)
        logits = run_views(model, clips, average).float().cpu().numpy()
        rev = None
        if with_reversed:
            rev = run_views(model, clips.flip(dims=(-3,)), average).float().cpu().numpy()   # T reversed
        rows.append((batch, logits, labels, rev))
    gathered = [row for part in all_gather_objects(env, rows) for row in part]
    gathered.sort(key=lambda row: row[0][0])
    if not gathered:
        raise ValueError("the dataset is empty")
    logits = np.concatenate([r[1] for r in gathered])
    labels = np.concatenate([r[2] for r in gathered])
    reversed_logits = np.concatenate([r[3] for r in gathered]) if with_reversed else None
    order = np.concatenate([r[0] for r in gathered])
    assert np.array_equal(order, np.arange(len(dataset))), "gathered batches do not cover the dataset once"
    return logits, labels, reversed_logits


def average_views(view_logits: torch.Tensor, how: str) -> torch.Tensor:
    """(..., V, K) -> (..., K), as MMAction2's `average_clips`: "score" the mean logit; "prob" the mean
    softmax, returned as its log, so that a softmax (or an argmax) of the result is the source's."""
    if how == "score":
        return view_logits.mean(dim=-2)
    return view_logits.float().softmax(dim=-1).mean(dim=-2).log()


def run_views(model: nn.Module, clips: torch.Tensor, how: str) -> torch.Tensor:
    """A model's logits for (B, 3, T, H, W), or for (B, V, 3, T, H, W) test views averaged as `how` says.

    A model with `takes_views` (compare's ClipRows) is handed the views itself.
    """
    if clips.dim() == 5 or getattr(model, "takes_views", False):
        return model(clips)
    batch, views = clips.shape[:2]
    flat = model(clips.flatten(0, 1))                                  # (B·V, K)
    return average_views(flat.unflatten(0, (batch, views)), how)       # (B, V, K) -> (B, K)


# ---------------------------------------------------------------- metrics


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Bool (N,): the label is among the k highest logits (ties broken by lower index)."""
    k = min(k, logits.shape[1])
    # argsort of -logits, stable: equal logits rank by class index, the same every run.
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=1)


def compute_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    reversed_logits: np.ndarray | None = None,
    reversed_labels: np.ndarray | None = None,
) -> dict:
    """Top-1/top-5/loss, per-class accuracy, confusion matrix, reversed accuracy."""
    n, c = logits.shape
    pred = np.argsort(-logits, axis=1, kind="stable")[:, 0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    support = confusion.sum(axis=1)
    per_class = {
        name: (float(confusion[i, i] / support[i]) if support[i] else None)
        for i, name in enumerate(class_names)
    }
    metrics = {
        "num_clips": int(n),
        "top1": float((pred == labels).mean()),
        "top5": float(topk_correct(logits, labels, 5).mean()),
        "loss": float(-log_probs[np.arange(n), labels].mean()),
        "per_class_accuracy": per_class,
        "class_support": {name: int(s) for name, s in zip(class_names, support)},
        "confusion_matrix": confusion.tolist(),
    }
    if reversed_logits is not None and reversed_labels is not None:
        rev_pred = np.argsort(-reversed_logits, axis=1, kind="stable")[:, 0]
        metrics["reversed_top1"] = float((rev_pred == reversed_labels).mean())
        # A clip and its reversal both right: only a model that sees order can do this on a pair.
        metrics["both_directions_top1"] = float(((rev_pred == reversed_labels) & (pred == labels)).mean())
    return metrics


def reversed_targets(data_root: str | Path, class_names: Sequence[str], labels: np.ndarray) -> np.ndarray | None:
    """The label a time-reversed clip should get, from DATA/reverse_pairs.json; None if absent."""
    path = Path(data_root) / REVERSE_PAIRS_FILE
    if not path.is_file():
        return None
    pairs = json.loads(path.read_text())
    index = {name: i for i, name in enumerate(class_names)}
    table = np.full(len(class_names), -1, dtype=np.int64)
    for name, twin in pairs.items():
        if name in index and twin in index:
            table[index[name]] = index[twin]
    missing = sorted({class_names[i] for i in labels if table[i] < 0})
    if missing:
        raise ValueError(f"{path} gives no time-reversal pair for {missing}")
    return table[labels]


# ---------------------------------------------------------------- the evaluate command


def dataset_for(checkpoint, data: str | Path, split: str, decoder: str):
    from .data.ssv2 import SSv2Dataset

    spec = checkpoint.config.clip_spec()
    dataset = SSv2Dataset(data, split, spec, train=False, decoder=decoder, views=True)
    if dataset.class_names != checkpoint.config.class_names:
        unknown = sorted(set(dataset.class_names) - set(checkpoint.config.class_names))
        if unknown:
            raise ValueError(f"{data}: classes the checkpoint does not know: {unknown[:5]}")
        # Same classes, another order: relabel into the checkpoint's indices.
        index = {name: i for i, name in enumerate(checkpoint.config.class_names)}
        dataset.samples = [(p, index[dataset.class_names[y]], vid) for p, y, vid in dataset.samples]
        dataset.class_names = list(checkpoint.config.class_names)
    return dataset


def evaluate_model(
    model: nn.Module,
    dataset,
    class_names: Sequence[str],
    data_root: str | Path,
    env: DistEnv = DistEnv(),
    batch_size: int = 16,
    reversed_: bool = True,
    progress: Callable | None = None,
) -> dict:
    """Metrics of `model` on `dataset` (items (clip, label)); the same on every rank."""
    labels_only = np.array([s[1] for s in getattr(dataset, "samples", [])], dtype=np.int64)
    rev_labels = reversed_targets(data_root, class_names, labels_only) if reversed_ and len(labels_only) else None
    logits, labels, rev_logits = predict_logits(
        model, dataset, env, batch_size, with_reversed=rev_labels is not None, progress=progress
    )
    if rev_labels is not None and not np.array_equal(labels, labels_only):
        raise AssertionError("dataset labels changed while evaluating")
    return compute_metrics(logits, labels, class_names, rev_logits, rev_labels)


def summary_line(metrics: dict) -> str:
    text = f"top-1 {100 * metrics['top1']:.2f}%  top-5 {100 * metrics['top5']:.2f}%  loss {metrics['loss']:.4f}"
    if "reversed_top1" in metrics:
        text += f"  reversed {100 * metrics['reversed_top1']:.2f}%"
    return text + f"  ({metrics['num_clips']} clips)"


def _print_report(metrics: dict, class_names: Sequence[str]) -> None:
    print(summary_line(metrics))
    width = max(len(n) for n in class_names)
    print(f"\n{'class':<{width}}  {'acc':>7}  {'n':>4}")
    for name in class_names:
        acc = metrics["per_class_accuracy"][name]
        print(f"{name:<{width}}  {'-' if acc is None else f'{100 * acc:6.2f}%':>7}  {metrics['class_support'][name]:>4}")
    print("\nconfusion matrix (rows: true class, columns: predicted, in class order)")
    for i, row in enumerate(metrics["confusion_matrix"]):
        print(f"{i:>3} " + " ".join(f"{v:>3}" for v in row))


def cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        env = init_distributed(args.device, args.threads)
    except DeviceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        checkpoint = load_checkpoint(args.checkpoint, device=env.device)
        dataset = dataset_for(checkpoint, args.data, args.split, args.decoder)
    except (CheckpointError, FileNotFoundError, ValueError, KeyError) as error:
        if env.is_main:
            print(f"error: {error}", file=sys.stderr)
        shutdown(env)
        return 2
    progress = None
    if env.is_main and not args.json:
        from tqdm import tqdm

        progress = lambda it: tqdm(it, desc=f"evaluate (rank 0 of {env.world_size})", leave=False)  # noqa: E731
    metrics = evaluate_model(
        checkpoint.model, dataset, checkpoint.config.class_names, args.data, env,
        batch_size=args.batch_size, reversed_=not args.no_reversed, progress=progress,
    )
    metrics = {
        "checkpoint": str(checkpoint.path), "data": str(args.data), "split": args.split,
        "world_size": env.world_size, **metrics,
    }
    if env.is_main:
        if args.json:
            print(json.dumps(metrics, indent=1))
        else:
            _print_report(metrics, checkpoint.config.class_names)
    shutdown(env)
    return 0


# ---------------------------------------------------------------- the predict command


VIEWS_PER_FORWARD = 4    # test views per forward pass: 30 I3D views at 256² at once would take GBs


def predict_video(checkpoint, video: str | Path, topk: int = 5, decoder: str = "auto",
                  with_logits: bool = False) -> dict:
    """`gta_core.predict` as the `predict` command prints it (JSON-able).

    Every test view of the config (num_clips, twice_sample, ThreeCrop) is run and their logits
    averaged as its `average_views` says; "views" gives each view's frames and top class, and
    with_logits every view's logits and the averaged scores (MMAction2's pred_score).
    """
    from .api import predict

    found = predict(checkpoint, video, topk=topk, decoder=decoder)
    result = {
        "video": str(video),
        "checkpoint": str(checkpoint.path),
        "frame_indices": found.frame_indices,
        "num_decoded_frames": found.num_decoded_frames,
        "notice": found.notice,
        "average_views": found.average_views,
        "views": [{"name": v.name, "frame_indices": v.frame_indices, "top1": v.top1} for v in found.views],
        "predictions": [
            {"rank": s.rank, "class": s.name, "index": s.index, "probability": s.probability, "logit": s.logit}
            for s in found.top
        ],
    }
    if with_logits:
        result["view_logits"] = found.view_logits.tolist()
        result["scores"] = found.scores.tolist()
    return result


def cmd_predict(args: argparse.Namespace) -> int:
    from .video import VideoError

    try:
        device = pick_device(args.device)
        checkpoint = load_checkpoint(args.checkpoint, device=device)
        result = predict_video(checkpoint, args.video, args.topk, args.decoder, args.logits)
    except (DeviceError, CheckpointError, VideoError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        if result["notice"]:
            print(f"note: {result['notice']}")
        if len(result["views"]) > 1:
            print(f"{len(result['views'])} test views, averaged as the source does ({result['average_views']}):")
            for view in result["views"]:
                print(f"    {view['name']:<24} frames {view['frame_indices'][0]}–{view['frame_indices'][-1]}"
                      f"  top-1 {view['top1']}")
        for row in result["predictions"]:
            print(f"{row['rank']:>2}. {100 * row['probability']:6.2f}%  {row['class']}")
    return 0


# ---------------------------------------------------------------- the model-card command

CARD_START, CARD_END = "<!-- model-card:start -->", "<!-- model-card:end -->"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def model_card_rows(folders: Sequence[str | Path]) -> list[dict]:
    """One row per checkpoint: what its config.json records, plus params and GFLOPs counted now."""
    from .checkpoint import read_config
    from .flops import count_parameters, measure_architecture_cost

    rows = []
    for folder in folders:
        folder = Path(folder)
        config = read_config(folder)
        cost = measure_architecture_cost(config.model_config(), config.input_size)
        size_mb = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20
        m, prov, data = config.metrics, config.provenance, config.dataset
        imported = bool(prov.get("imported"))
        dataset = (f"{data.get('name')} (imported from {prov.get('source_format')})" if imported
                   else f"{data.get('variant') or data.get('name')} (seed {data.get('seed')})")
        rows.append({
            "checkpoint": folder.name, "model": config.model_name, "dataset": dataset,
            "train_seed": prov.get("seed", (prov.get("train_config") or {}).get("seed")),
            "input": f"{config.num_frames}×{config.input_size}²", "params_m": cost.params / 1e6, "gflops": cost.gflops,
            "val_top1": m.get("val_top1"), "val_top5": m.get("val_top5"),
            "reversed_top1": m.get("val_reversed_top1"), "both_top1": m.get("val_both_directions_top1"),
            "epochs": prov.get("epochs_done"), "train_minutes": (prov.get("wall_seconds") or 0) / 60,
            "device": "imported" if imported else prov.get("device"), "command": prov.get("command"),
            "commit": prov.get("git_commit") or f"source sha256 {str(prov.get('source_sha256'))[:12]}",
            "size_mb": size_mb, "params_check": count_parameters(load_checkpoint(folder).model) == cost.params,
        })
    return rows


def model_card_markdown(rows: list[dict]) -> str:
    head = ("| checkpoint | dataset | train seed | input | params (M) | GFLOPs | val top-1 % | val top-5 % | reversed top-1 % "
            "| both directions % | epochs | training (min) | device | size (MB) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['checkpoint']} | {r['dataset']} | {r['train_seed'] if r['train_seed'] is not None else '-'} | {r['input']} | {r['params_m']:.3f} | {r['gflops']:.3f} "
            f"| {_pct(r['val_top1'])} | {_pct(r['val_top5'])} | {_pct(r['reversed_top1'])} | {_pct(r['both_top1'])} "
            f"| {r['epochs'] or '-'} | {r['train_minutes']:.1f} | {r['device']} | {r['size_mb']:.1f} |")
    lines.append("")
    lines.append("Commands (recorded in each checkpoint's `config.json`, `provenance.command`; code at `provenance.git_commit`):")
    lines.append("")
    for r in rows:
        lines.append(f"- `{r['checkpoint']}` ({r['commit']}): `{r['command']}`")
    return "\n".join(lines) + "\n"


def cmd_model_card(args: argparse.Namespace) -> int:
    try:
        rows = model_card_rows(args.checkpoints)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = model_card_markdown(rows)
    if args.write:
        text = Path(args.write).read_text()
        if CARD_START not in text or CARD_END not in text:
            print(f"error: {args.write} has no {CARD_START} ... {CARD_END} section", file=sys.stderr)
            return 2
        before, rest = text.split(CARD_START, 1)
        after = rest.split(CARD_END, 1)[1]
        Path(args.write).write_text(f"{before}{CARD_START}\n{table}{CARD_END}{after}")
    print(json.dumps(rows, indent=1) if args.json else table, end="")
    return 0


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "evaluate", help="top-1/5, per-class, confusion matrix and reversed accuracy of a checkpoint",
        description="Evaluate a checkpoint on an SSv2-layout dataset; runs under torchrun too.",
    )
    ev.add_argument("checkpoint")
    ev.add_argument("--data", required=True, help="dataset folder (SSv2 layout)")
    ev.add_argument("--split", default="validation", choices=("train", "validation"))
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ev.add_argument("--decoder", default="auto", choices=("auto", "decord", "pyav"))
    ev.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: automatic)")
    ev.add_argument("--no-reversed", action="store_true", help="skip reversed accuracy")
    ev.add_argument("--json", action="store_true", help="print all metrics as JSON")
    ev.set_defaults(func=cmd_evaluate)

    pr = subparsers.add_parser("predict", help="top-k classes of one video")
    pr.add_argument("checkpoint")
    pr.add_argument("video")
    pr.add_argument("--topk", type=int, default=5)
    pr.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    pr.add_argument("--decoder", default="auto", choices=("auto", "decord", "pyav"))
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--logits", action="store_true",
                    help="with --json: every test view's logits and the averaged scores (MMAction2's pred_score)")
    pr.set_defaults(func=cmd_predict)

    mc = subparsers.add_parser("model-card", help="the model-card table of checkpoints, from their configs")
    mc.add_argument("checkpoints", nargs="+")
    mc.add_argument("--write", help="replace the model-card section of this markdown file (e.g. checkpoints/README.md)")
    mc.add_argument("--json", action="store_true")
    mc.set_defaults(func=cmd_model_card)
