"""Training: `python -m gta_core train`, one process or under torchrun.

The flags, read over an optional --config file (defaults < --config FILE < flags).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..distributed import DeviceError
from .build import SetupError
from .config import TrainConfig
from .loop import train


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults < --config FILE < flags given on the command line."""
    values: dict = {}
    if args.config:
        values = json.loads(Path(args.config).read_text())
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise SystemExit(f"error: {args.config}: unknown keys {unknown}")
    for f in dataclasses.fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    overrides = dict(values.get("model_overrides", {}))
    for name, key in (("width_multiplier", "width_multiplier"), ("dropout", "dropout"), ("frames", "num_frames")):
        if getattr(args, name) is not None:
            overrides[key] = getattr(args, name)
    overrides.update(dict(args.set or []))
    values["model_overrides"] = overrides
    for key in ("mean", "std", "milestones"):
        if key in values:
            values[key] = tuple(values[key])
    cfg = TrainConfig(**values)
    if not cfg.data or not cfg.out:
        raise SystemExit("error: --data and --out are required (flags or the config file)")
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    try:
        train(build_config(args))
    except (SetupError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model on an SSv2-layout dataset (one process or torchrun)",
        description=__doc__.split("\n\n")[0],
    )
    # Every flag defaults to None so that a --config file's value survives unless the flag is given.
    p.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    p.add_argument("--model", help="registry name (default demo_r2d18_gta)")
    p.add_argument("--data", help="dataset folder in the SSv2 layout")
    p.add_argument("--out", help="checkpoint folder to write")
    p.add_argument("--width-multiplier", type=float)
    p.add_argument("--dropout", type=float)
    p.add_argument("--frames", type=int, help="clip length T (num_frames)")
    p.add_argument("--set", action="append", type=_parse_override, metavar="KEY=VALUE",
                   help="any other model setting, e.g. --set gta_groups=8")
    p.add_argument("--input-size", type=int)
    p.add_argument("--resize-shorter", type=int)
    p.add_argument("--hflip", action="store_true", default=None)
    p.add_argument("--reverse-aug", type=float,
                   help="probability of training on a clip played backwards with its reverse-pair label")
    p.add_argument("--cache-frames", action="store_true", default=None,
                   help="decode each split once into DATA/.frame_cache and train from it")
    p.add_argument("--init-from", help="checkpoint whose 2D backbone weights start this model")
    p.add_argument("--init-imagenet", help="ImageNet ResNet-18/34/50 in torchvision layout (.safetensors or .pth)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per process")
    p.add_argument("--optimizer", choices=("adamw", "sgd"))
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--schedule", choices=("cosine", "step"))
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--milestones", type=int, nargs="+")
    p.add_argument("--gamma", type=float)
    p.add_argument("--matrix-lr-mult", type=float, help="lr multiplier of GTA's global matrices M̂")
    p.add_argument("--matrix-weight-decay", type=float, help="weight decay of GTA's global matrices M̂")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--amp", choices=("auto", "on", "off"))
    p.add_argument("--sync-bn", action="store_true", default=None)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, help="CPU threads per process (0: automatic; 1 on a busy machine)")
    p.add_argument("--workers", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--resume", action="store_true", default=None, help="continue from OUT/resume")
    p.add_argument("--force", action="store_true", default=None, help="overwrite a checkpoint already in OUT")
    p.add_argument("--log-sample-ids", action="store_true", default=None,
                   help="write each rank's training item indices into metrics.jsonl (debugging)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--decoder", choices=("auto", "decord", "pyav"))
    p.set_defaults(func=cmd_train)
