"""`python -m gta_core synth`: the command line of the synthetic-data generator (gta_core/data/synth.py)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import synth
from .synth import CLUTTER_LEVELS, VALIDATION_FRACTION, VARIANTS, generate

def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="generate a synthetic dataset in the SSv2 layout",
        description=synth.__doc__.split("\n\n")[0],
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--variant", choices=VARIANTS, default="temporal")
    p.add_argument("--videos-per-class", type=int, default=67)
    p.add_argument("--size", default="128x170", help="HxW, or the shorter side for 4:3 (default 128x170)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="processes (default: the CPUs available)")
    p.add_argument("--clutter", choices=CLUTTER_LEVELS, default="high",
                   help="high: busy backgrounds and distractors; low: what the CPU demo models train on")
    p.add_argument("--validation-fraction", type=_fraction, default=VALIDATION_FRACTION,
                   help="share of each class's videos in validation.json (default 0.2; 1: a validation-only set)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    out = generate(
        args.out, seed=args.seed, variant=args.variant, videos_per_class=args.videos_per_class,
        size=args.size, frames=args.frames, fps=args.fps, workers=args.workers, clutter=args.clutter,
        validation_fraction=args.validation_fraction,
        # Rebuilt from the parsed arguments (sys.argv is not ours when called in-process).
        command_line=(
            f"python -m gta_core synth {args.out} --seed {args.seed} --variant {args.variant} "
            f"--videos-per-class {args.videos_per_class} --size {args.size} --frames {args.frames} --fps {args.fps} "
            f"--clutter {args.clutter} --validation-fraction {args.validation_fraction}"
        ),
    )
    info = json.loads((out / "dataset_info.json").read_text())
    print(f"wrote {info['num_videos']} videos ({info['num_classes']} classes) to {out} in {info['seconds']} s")
    return 0
