"""The `export` command: argument parsing and the one-line messages."""
from __future__ import annotations

import sys

from ..checkpoint import CheckpointError
from .pipeline import ExportError, ExportOptions, export


def cmd_export(args) -> int:
    if len(args.paths) < 2:
        print("error: give at least one checkpoint folder and then a video or a folder of videos", file=sys.stderr)
        return 2
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    options = ExportOptions(
        ig_steps=args.ig_steps, internal_batch_size=args.internal_batch_size, knockout=args.knockout,
        plotlyjs=args.plotlyjs, top_k=args.topk, seed=args.seed, device=args.device, untrusted=args.probe,
        browser=args.browser,
    )
    try:
        done, failed = export(args.paths[:-1], args.paths[-1], args.out, options, show_progress=not args.no_progress)
    except (CheckpointError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = sum(len(d.files) for d in done)
    print(f"wrote {files} files for {len(done)} video(s) under {args.out}")
    notes = {d.note for d in done if d.note}
    for note in sorted(notes):
        print(note, file=sys.stderr)
    for video, message in failed.items():
        print(f"skipped {video}: {message}", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="every view's figures (PNG, HTML) and an attention MP4 per video",
        description="python -m gta_core export CHECKPOINT [CHECKPOINT ...] VIDEO_OR_FOLDER --out DIR",
    )
    parser.add_argument("paths", nargs="+", metavar="CHECKPOINT ... VIDEO_OR_FOLDER",
                        help="one or more checkpoint folders, then a video file or a folder of videos")
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per video)")
    parser.add_argument("--ig-steps", type=int, default=32, help="Integrated Gradients steps (default 32)")
    parser.add_argument("--internal-batch-size", type=int, default=8,
                        help="interpolated clips per IG forward/backward, bounds memory (default 8)")
    parser.add_argument("--knockout", choices=("all", "blocks", "none"), default="all",
                        help="knock out every component, whole blocks only, or nothing (default all)")
    parser.add_argument("--plotlyjs", choices=("inline", "shared"), default="inline",
                        help="plotly.js inside every page (default) or once in OUT/plotly.min.js")
    parser.add_argument("--topk", type=int, default=5, help="classes per model in the predictions view (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order probe's shuffle")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--probe", action="store_true",
                        help="probe each video in a child process first (for files from elsewhere)")
    parser.add_argument("--browser", metavar="PATH",
                        help="Chromium/Chrome that draws the PNGs (default: kaleido's search, e.g. /usr/bin/chromium)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's own; 1 is fastest on a busy 2-core CPU)")
    parser.set_defaults(func=cmd_export)
