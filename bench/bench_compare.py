"""`compare` wall time: the three temporal demo checkpoints (NL, DNL, GTA) on 450 validation clips.

    .venv/bin/python bench/bench_compare.py [--data data/temporal_low_s0] [--threads 1 2] [--with-evaluate]

- cold: `python -m gta_core compare NL DNL GTA --data DATA` in-process, empty cache folder;
- cached: the same command again (in-process, then as a fresh `python -m gta_core` process, which adds
  Python's and torch's start-up): the report is read back, no model runs;
- --with-evaluate: `evaluate --no-reversed` of each checkpoint one after the other, for what sharing
  one decoded batch between the three saves.
DATA defaults to the demo checkpoints' own dataset, data/temporal_low_s0 (its validation split: 450
clips). Where it is absent, the same 450 clips are generated (once) into bench/results/: a clip's frames
depend only on its seed words (seed, variant, class, k), so `--videos-per-class 30 --validation-fraction 1`
writes byte-identical videos to the first 30 of each class of the 150-per-class set (only their ids differ).
Results also go to bench/results/bench_compare.json.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from gta_core.__main__ import main  # noqa: E402
from gta_core.data import synth  # noqa: E402

CHECKPOINTS = [str(ROOT / "checkpoints" / f"temporal_r2d18_{kind}") for kind in ("nl", "dnl", "gta")]
DEMO_DATA = ROOT / "data/temporal_low_s0"
GENERATED = ROOT / "bench/results/temporal_low_s0_validation"


def default_data() -> Path:
    """The demo checkpoints' validation clips: their dataset, or the same 450 clips generated once."""
    if (DEMO_DATA / "validation.json").is_file():
        return DEMO_DATA
    if not (GENERATED / "validation.json").is_file():
        print(f"# generating the 450 validation clips of temporal_low_s0 into {GENERATED}", flush=True)
        synth.generate(GENERATED, seed=0, variant="temporal", videos_per_class=30, size="128x170", frames=16,
                       fps=8, clutter="low", validation_fraction=1.0)
    return GENERATED


def run(args: list[str]) -> tuple[float, str]:
    """Wall time of `python -m gta_core ARGS` in this process, and its stdout."""
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(args)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{args[0]} exited with {code}")
    return elapsed, out.getvalue()


def run_process(args: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gta_core", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def bench(data: Path, threads: int, with_evaluate: bool) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="gta-lens-compare-bench-") as cache:
        args = ["compare", *CHECKPOINTS, "--data", str(data), "--json", "--cache-dir", cache,
                "--threads", str(threads), "--device", "cpu"]
        cold, report = run(args)
        cached, again = run(args)
        if json.loads(again) != json.loads(report):
            raise AssertionError("the cached report differs from the computed one")
        cached_cli = run_process(args, threads)
    row = {"threads": threads, "clips": json.loads(report)["num_clips"], "cold_s": cold, "cached_s": cached,
           "cached_cli_s": cached_cli, "top1": {k: v["top1"] for k, v in json.loads(report)["metrics"].items()}}
    if with_evaluate:
        row["evaluate_each_s"] = sum(
            run(["evaluate", c, "--data", str(data), "--json", "--no-reversed", "--threads", str(threads),
                 "--device", "cpu"])[0]
            for c in CHECKPOINTS
        )
    return row


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="default: the demo checkpoints' 450 validation clips")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--with-evaluate", action="store_true")
    args = parser.parse_args()
    args.data = args.data or default_data()
    if not (args.data / "validation.json").is_file():
        sys.exit(f"error: {args.data} is not a dataset (SSv2 layout, with validation.json)")
    print(f"# GTA Lens compare bench: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f} at the start, CPU only; {args.data}")
    print(f"{'threads':>7} {'clips':>6} {'cold s':>8} {'cached s':>9} {'cached CLI s':>13} {'evaluate ×3 s':>14}")
    rows = []
    for threads in args.threads:
        row = bench(args.data, threads, args.with_evaluate)
        rows.append(row)
        each = f"{row['evaluate_each_s']:14.2f}" if "evaluate_each_s" in row else f"{'-':>14}"
        print(f"{threads:>7} {row['clips']:>6} {row['cold_s']:8.2f} {row['cached_s']:9.3f} "
              f"{row['cached_cli_s']:13.2f} {each}")
    print(f"# load average {os.getloadavg()[0]:.1f} at the end; top-1: "
          + ", ".join(f"{Path(k).name} {100 * v:.1f}%" for k, v in rows[0]["top1"].items()))
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_compare.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main_bench()
