"""`python -m gta_core query-dependence CKPT... --data DIR`: the query-dependence score of every block, over a split.

Every checkpoint runs on every clip of the split as `evaluate` reads it
(test-mode clips); each clip is captured once and scored per block and part
(gta_core/query_dependence.py). The report averages the per-clip scores over
all clips and over the clips of each class (`per_class`), the same numbers
`compare --json` carries.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from .checkpoint import CheckpointError, load_checkpoint
from .evaluate import batch_indices, dataset_for
from .query_dependence import capture_scores
from .records import capture
from .video import VideoError


def clip_means(js: np.ndarray, explained: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Per-clip js (NaN: undefined) and explained (N,) -> means over all clips and over each class's clips."""
    def means(mine: np.ndarray) -> dict:
        defined = js[mine][~np.isnan(js[mine])]
        return {"js": float(defined.mean()) if defined.size else None,
                "explained": float(explained[mine].mean()), "clips": int(mine.sum())}

    everything = means(np.ones(len(js), dtype=bool))
    per_class = {name: means(labels == index) for index, name in enumerate(class_names) if (labels == index).any()}
    return {**everything, "per_class": per_class}


def summarise(per_clip: list[dict], labels: list[int], class_names: list[str]) -> dict:
    """[{block: {part: Score}} per clip] -> {block: {part: {js, explained, clips, analytic, note, per_class}}}."""
    out: dict = {}
    labels = np.asarray(labels)
    for block, parts in per_clip[0].items():
        out[block] = {}
        for part, template in parts.items():
            js = np.array([np.nan if (v := clip[block][part].js) is None else v for clip in per_clip])
            explained = np.array([clip[block][part].explained for clip in per_clip])
            note = f"{template.note} (first clip)" if part == "GTA regions" else template.note
            out[block][part] = {**clip_means(js, explained, labels, class_names),
                                "analytic": template.analytic, "note": note}
    return out


def scores_per_clip(model: torch.nn.Module, clips: torch.Tensor) -> list[dict]:
    """One capture of a batch (B, [V,] 3, T, H, W) -> [{block: {part: Score}}] per clip.

    With test views (the checkpoint's multi-view pipeline) each view is scored and a clip's score is the
    mean over its views, as `compare` averages them."""
    views = clips.shape[1] if clips.dim() == 6 else 1
    result = capture(model, clips.flatten(0, 1) if clips.dim() == 6 else clips)
    per_view = [capture_scores(result, batch) for batch in range(result.logits.shape[0])]
    return [_view_mean(per_view[start:start + views]) for start in range(0, len(per_view), views)]


def _view_mean(views: list[dict]) -> dict:
    """[{block: {part: Score}}] of one clip's views -> one {block: {part: Score}} (js and explained averaged)."""
    out = {}
    for block, parts in views[0].items():
        out[block] = {}
        for part, first in parts.items():
            scores = [view[block][part] for view in views]
            js = None if first.js is None else float(np.mean([score.js for score in scores]))
            explained = float(np.mean([score.explained for score in scores]))
            out[block][part] = dataclasses.replace(first, js=js, explained=explained,
                                                   queries=sum(score.queries for score in scores))
    return out


def measure(checkpoint_path: str, data: str, split: str = "validation", batch_size: int = 4,
            decoder: str = "auto", limit: int | None = None) -> dict:
    """The score of every block of one checkpoint over a split (the first `limit` clips if given)."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = checkpoint.model.eval()
    dataset = dataset_for(checkpoint, data, split, decoder)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if not count:
        raise ValueError(f"{data}: the {split} split has no clips")
    per_clip, labels = [], []
    for batch in batch_indices(count, batch_size):
        items = [dataset[i] for i in batch]
        per_clip += scores_per_clip(model, torch.stack([clip for clip, _ in items]))
        labels += [int(label) for _, label in items]
    if not per_clip[0]:
        raise ValueError(f"{checkpoint_path}: the model has no attention blocks to score")
    return {
        "checkpoint": str(checkpoint_path), "model": checkpoint.config.model_name, "clips": count,
        "imported": bool(checkpoint.config.provenance.get("imported")),
        "blocks": summarise(per_clip, labels, list(dataset.class_names)),
    }


def _number(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def text_table(reports: list[dict]) -> str:
    lines = ["model | block | part | JS (bits, mean) | variance explained by the mean row | clips"]
    for report in reports:
        for block, parts in report["blocks"].items():
            for part, row in parts.items():
                tag = " (analytic)" if row["analytic"] else ""
                lines.append(f"{report['model']} | {block} | {part} | {_number(row['js'])}{tag} | "
                             f"{_number(row['explained'])} | {report['clips']}")
    return "\n".join(lines)


def cmd_query_dependence(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        reports = [measure(path, args.data, args.split, args.batch_size, args.decoder, args.limit)
                   for path in args.checkpoints]
    except (CheckpointError, VideoError, FileNotFoundError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(reports, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text if args.json else text_table(reports))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "query-dependence", help="how much each block's attention changes with the query, over a dataset split",
        description="Mean Jensen-Shannon divergence of query rows to their mean row and the variance the mean "
                    "row explains, per block, averaged over clips and per class (docs/query-dependence.md).",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CKPT")
    p.add_argument("--data", required=True, help="dataset folder (SSv2 layout)")
    p.add_argument("--split", default="validation", choices=("train", "validation"))
    p.add_argument("--limit", type=int, help="score only the first N clips of the split")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--decoder", default="auto", choices=("auto", "decord", "pyav"))
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--out", help="also write the JSON report to this file")
    p.set_defaults(func=cmd_query_dependence)
