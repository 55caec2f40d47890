"""Integrated Gradients: time and peak memory for the demo models at the default steps.

    python bench/bench_interpret.py [--sizes 112 64] [--threads 2 1] [--steps 32] [--internal-batch-size 8]
        [--models demo_r2d18 demo_r2d18_gta] [--out bench/results/bench_interpret.json]

Every (model, size, threads) runs in its own child process, so one run's
allocations cannot flatter or burden the next. In the child: build the
model (random weights, blocks switched on as in the app's fixtures), read
nothing from disk, warm up with one forward and a 1-step IG, then time
`gta_core.interpret.integrated_gradients` at the default steps (32) and
internal batch size (8), median of `--repeats` runs.

Memory is the peak resident set (getrusage ru_maxrss) after the IG runs
minus the resident set just before them (after the warm-up). ru_maxrss sees
what torch's CPU allocator takes from the OS, which tracemalloc does not
(tracemalloc only follows Python's own allocator, so it reports ~0 for
tensors). Warm-up already paid for the libraries and one forward's buffers,
so the delta is IG's own extra: interpolated clips, activations kept for the
backward pass, the gradients, and the private model copy.

112² is the demo registry's input size; 64² is what the shipped demo
checkpoints were trained at (checkpoints/train_demos.sh). Machine load is
recorded: on 2 shared cores, timings of a busy machine are not comparable to
those of an idle one.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["demo_r2d18", "demo_r2d18_nl", "demo_r2d18_dnl", "demo_r2d18_tape", "demo_r2d18_gta"]


def child(name: str, size: int, threads: int, steps: int, batch: int, repeats: int) -> dict:
    import torch

    from gta_core import create_model
    from gta_core.interpret import integrated_gradients
    from tests.helpers import activate_blocks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = activate_blocks(create_model(name, num_classes=12)).eval()
    clip = torch.randn(3, 8, size, size, generator=torch.Generator().manual_seed(0))
    integrated_gradients(model, clip, steps=1, internal_batch_size=1)          # warm-up
    before_kb = _rss_kb()
    seconds, deltas = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        result = integrated_gradients(model, clip, steps=steps, internal_batch_size=batch)
        seconds.append(time.perf_counter() - start)
        deltas.append(abs(result.delta) / max(abs(result.score - result.baseline_score), 1e-12))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "model": name, "size": size, "threads": threads, "steps": steps, "internal_batch_size": batch,
        "seconds_median": statistics.median(seconds), "seconds_all": seconds,
        "peak_extra_mb": max(peak_kb - before_kb, 0) / 1024, "rss_before_mb": before_kb / 1024,
        "relative_completeness_gap": max(deltas),
    }


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--sizes", nargs="+", type=int, default=[112, 64])
    parser.add_argument("--threads", nargs="+", type=int, default=[2, 1])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--internal-batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench/results/bench_interpret.json"))
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, size, threads, steps, batch, repeats = args.child
        print(json.dumps(child(name, int(size), int(threads), int(steps), int(batch), int(repeats))))
        return 0

    rows = []
    print(f"{'model':<18}{'size':>6}{'threads':>8}{'IG s':>8}{'peak +MB':>10}{'gap':>10}   load")
    for size in args.sizes:
        for threads in args.threads:
            for name in args.models:
                load = os.getloadavg()[0]
                command = [sys.executable, __file__, "--child", name, str(size), str(threads), str(args.steps),
                           str(args.internal_batch_size), str(args.repeats)]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                row = json.loads(output.strip().splitlines()[-1])
                row["load_before"] = load
                rows.append(row)
                print(f"{name:<18}{size:>6}{threads:>8}{row['seconds_median']:>8.2f}{row['peak_extra_mb']:>10.1f}"
                      f"{row['relative_completeness_gap']:>10.1e}   {load:.1f}")
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "note": "IG of the predicted class, mean baseline, Gauss-Legendre; peak_extra_mb = ru_maxrss after IG - VmRSS before "
                "(after warm-up); gap = |delta| / |F(x) - F(baseline)|; load_before = 1-min load average",
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
