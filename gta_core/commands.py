"""CLI commands about models and checkpoints: `models`, `flops`, `info`."""
from __future__ import annotations

import argparse
import json
import sys

from .checkpoint import CheckpointError, load_checkpoint
from .flops import count_parameters, measure_cost
from .models import list_models, model_config, model_source

# The paper's Table 1 / Table 6 (R2D-50 at 8×224², SlowFast-R50 16×8 at 256², 174 classes).
PAPER_COST = {
    "r2d50": (23.9, 32.7),
    "r2d50_nl": (31.2, 61.1),
    "r2d50_sa": (27.5, 41.7),
    "r2d50_ta": (27.5, 41.0),
    "r2d50_dnl": (31.2, 49.9),
    "r2d50_tape": (31.2, 49.9),
    "r2d50_gta": (31.2, 50.2),
    "slowfast_r50": (34.0, 131.4),
    "slowfast_r50_nl": (41.4, 239.9),
    "slowfast_r50_dnl": (41.4, 169.1),
    "slowfast_r50_gta": (41.4, 169.9),
}


def _add_shape_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, help="clip length T (default: the model's, e.g. 8 for R2D, 64 for SlowFast)")
    parser.add_argument("--size", type=int, help="input side in pixels (default: the model's, 224; 256 for SlowFast)")
    parser.add_argument("--classes", type=int, default=174, help="number of classes (default 174, SSv2)")


def _cost_rows(names: list[str], args) -> list[dict]:
    rows = []
    for name in names:
        config = model_config(name)
        frames, size = args.frames or config.num_frames, args.size or config.input_size
        cost = measure_cost(name, frames=frames, size=size, classes=args.classes)
        at_paper_input = (frames, size, args.classes) == (config.num_frames, config.input_size, 174)
        paper = PAPER_COST.get(name) if at_paper_input else None
        rows.append({
            "name": name,
            "frames": frames,
            "size": size,
            "params_m": round(cost.params_m, 3),
            "gflops": round(cost.gflops, 2),
            "paper_params_m": paper[0] if paper else None,
            "paper_gflops": paper[1] if paper else None,
        })
    return rows


def _print_rows(rows: list[dict], args) -> None:
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.classes} classes; 1 multiply-add = 1 FLOP, BatchNorm not counted")
    source = "  source" if rows and "source" in rows[0] else ""
    print(f"{'model':<22}{'params (M)':>12}{'GFLOPs':>10}{'paper params':>14}{'paper GFLOPs':>14}{'input':>10}{source}")
    for row in rows:
        paper_p = f"{row['paper_params_m']:.1f}" if row["paper_params_m"] else "-"
        paper_f = f"{row['paper_gflops']:.1f}" if row["paper_gflops"] else "-"
        shape = f"{row['frames']}×{row['size']}²"
        line = f"{row['name']:<22}{row['params_m']:>12.2f}{row['gflops']:>10.2f}{paper_p:>14}{paper_f:>14}{shape:>10}"
        print(f"{line}  {row['source']}" if source else line)


def cmd_models(args) -> int:
    names = [n for n in list_models() if args.filter in n]
    rows = [{**row, "source": model_source(row["name"])} for row in _cost_rows(names, args)]
    _print_rows(rows, args)
    return 0


def cmd_flops(args) -> int:
    try:
        rows = _cost_rows(args.names, args)
    except KeyError as error:
        print(f"error: {error.args[0]}")
        return 2
    _print_rows(rows, args)
    return 0


def pipeline_summary(config) -> str:
    """One line: how clips are read, e.g. "dense 32×2, 10 clips × three crops of 256 after 256, bilinear, rgb"
    ("after 128×171": resized to exactly that, the aspect not kept)."""
    frames = (f"tsn {config.num_frames} segments" if config.sampling == "tsn"
              else f"{config.sampling} {config.num_frames}×{config.frame_interval}")
    clips = config.num_clips * (2 if config.twice_sample else 1)
    crops = {"three": "three crops", "ten": "ten crops (corners, centre, mirrored)"}.get(config.crop, "centre crop")
    crops += " (margin rounded)" if config.crop_rounding == "round" else ""
    resize = f"{config.resize_to[0]}×{config.resize_to[1]}" if config.resize_to else config.resize_shorter
    return (f"{frames}, {clips} clip{'s' if clips > 1 else ''} × {crops} of {config.input_size} after "
            f"{resize}, {config.interpolation}, {config.channel_order}, views averaged by "
            f"{config.average_views}")


def cmd_info(args) -> int:
    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    config = checkpoint.config
    summary = {
        "path": str(checkpoint.path),
        "model_name": config.model_name,
        "params": count_parameters(checkpoint.model),
        "num_frames": config.num_frames,
        "input_size": config.input_size,
        "pipeline": pipeline_summary(config),
        "num_classes": len(config.class_names),
        "dataset": config.dataset,
        "metrics": config.metrics,
        "provenance": config.provenance,
    }
    if args.json:
        print(json.dumps({**summary, "architecture": config.architecture, "class_names": config.class_names}, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:>12}: {value}")
    return 0


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="list registered models with params, GFLOPs and where each comes from")
    _add_shape_args(models)
    models.add_argument("--filter", default="", help="only names containing this text")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    flops = subparsers.add_parser("flops", help="params and GFLOPs of models, counted as in the paper")
    flops.add_argument("names", nargs="+", metavar="NAME")
    _add_shape_args(flops)
    flops.add_argument("--json", action="store_true")
    flops.set_defaults(func=cmd_flops)

    info = subparsers.add_parser("info", help="describe a checkpoint folder")
    info.add_argument("checkpoint")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)
