"""Export time: two shipped checkpoints on the bundled real video, and the knockout sweep before / after.

    .venv/bin/python bench/bench_export.py [--threads 1 2]

- export: `python -m gta_core export temporal_r2d18_nl temporal_r2d18_gta big_buck_bunny_720p.mp4`
  in-process, wall time per torch thread count (target <= 20 s on this CPU).
- knockout sweep of the GTA checkpoint: every component by a full forward each
  (the sweep before the cached block input) against `interpret.knockout`
  (each knockout runs from its block's cached input), median of 3, same run.
Results also go to bench/results/bench_export.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from gta_core import load_checkpoint  # noqa: E402
from gta_core.__main__ import main  # noqa: E402
from gta_core.interpret import knocked_out, knockout, knockout_components  # noqa: E402
from gta_core.video import read_clip  # noqa: E402

CHECKPOINTS = [ROOT / "checkpoints/temporal_r2d18_nl", ROOT / "checkpoints/temporal_r2d18_gta"]
VIDEO = ROOT / "assets/real/big_buck_bunny_720p.mp4"
TARGET_S = 20.0


def time_export(threads: int) -> float:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        code = main(["export", *map(str, CHECKPOINTS), str(VIDEO), "--out", out, "--no-progress"])
        elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"export exited with {code}")
    return elapsed


def full_forward_sweep(model, clip) -> None:
    """The sweep as it was: one whole forward per knocked-out component."""
    for component in knockout_components(model):
        with knocked_out(model, component), torch.inference_mode():
            model(clip[None])


def time_knockouts(threads: int) -> tuple[float, float, int]:
    torch.set_num_threads(threads)
    checkpoint = load_checkpoint(CHECKPOINTS[1])
    clip = read_clip(VIDEO, checkpoint.config.clip_spec()).tensor
    model = checkpoint.model
    before, after = [], []
    for _ in range(3):
        start = time.perf_counter()
        full_forward_sweep(model, clip)
        before.append(time.perf_counter() - start)
        start = time.perf_counter()
        knockout(model, clip)
        after.append(time.perf_counter() - start)
    return statistics.median(before), statistics.median(after), len(knockout_components(model))


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    print(f"# GTA Lens export bench: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}")
    print(f"{'threads':>7} {'export s':>9} {'target':>7} {'sweep before s':>15} {'sweep after s':>14} {'ratio':>6}")
    for threads in args.threads:
        export_s = time_export(threads)
        before, after, components = time_knockouts(threads)
        rows.append({"threads": threads, "export_s": export_s, "knockout_full_s": before,
                     "knockout_cached_s": after, "components": components})
        print(f"{threads:>7} {export_s:9.2f} {'met' if export_s <= TARGET_S else 'MISSED':>7} "
              f"{before:15.2f} {after:14.2f} {before / after:5.1f}x")
    print(f"# export: 2 checkpoints (NL, GTA), 1 real video, IG 32 steps, all knockouts; sweep: "
          f"{rows[0]['components']} components of temporal_r2d18_gta")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_export.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main_bench()
