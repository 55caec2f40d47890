"""Records per clip and capture cost: lazy records (now) against dense maps (before), and a query's latency.

The three NL models of issue 22, each at its default input, batch 1, random
weights, on this machine's CPU (shared with other jobs: say so when quoting):
TSM-R50-NL 8×224², I3D-R50-NL 32×224², SlowFast-R50-NL 64×256².

    python bench/bench_capture.py [--models r2d50_tsm_nl i3d_r50_nl slowfast_r50_nl] [--repeats 1]
                                  [--threads 1] [--no-dense]

Columns: a plain forward (fused attention), a lazy capture (the app's; flash
kernel + q, k, log-sum-exp), its ratio, the records' MB lazy at float32 and
float16 (`--records-dtype`), the dense maps' MB (what main kept: `capture(...,
dense=True)`), and the median time of one Query point answer (`views.query_view`
on every block, 20 random queries) from the lazy records.
Targets (issue 22): SlowFast-NL ≤ 64 MB of records (from 560 MB); capture ≤ 1.1×
a plain forward; a query ≤ 150 ms. Results also go to bench/results/bench_capture.json.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from gta_core import capture, create_model  # noqa: E402
from gta_core.models import model_config  # noqa: E402
from gta_core.views import query_view  # noqa: E402

MODELS = ["r2d50_tsm_nl", "i3d_r50_nl", "slowfast_r50_nl"]
MB = 2**20

ROOT = Path(__file__).resolve().parents[1]


def seconds(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def query_ms(cap, frames: int, count: int = 20) -> float:
    """Median ms of one Query point answer: every block's view of one random query."""
    rng, times = random.Random(0), []
    for _ in range(count):
        t, fy, fx = rng.randrange(frames), rng.random(), rng.random()
        elapsed, _ = seconds(lambda: [query_view(r, t, fy, fx) for r in cap.records.values()])
        times.append(1000 * elapsed)
    return statistics.median(times)


def bench(name: str, repeats: int, dense: bool) -> dict:
    torch.manual_seed(0)
    model = create_model(name).eval()
    config = model_config(name)
    clip = torch.randn(1, 3, config.num_frames, config.input_size, config.input_size)

    def plain():
        with torch.inference_mode():
            return model(clip)

    plain()  # warm-up
    plain_s, capture_s = [], []
    for _ in range(repeats):     # interleaved, so drift in machine load hits both alike
        plain_s.append(seconds(plain)[0])
        elapsed, cap = seconds(lambda: capture(model, clip))
        capture_s.append(elapsed)
    row = {
        "model": name, "input": f"{config.num_frames}×{config.input_size}²",
        "plain_s": statistics.median(plain_s), "capture_s": statistics.median(capture_s),
        "lazy_mb": cap.nbytes() / MB, "float16_mb": cap.to("cpu", torch.float16).nbytes() / MB,
        "query_ms": query_ms(cap, config.num_frames),
    }
    del cap
    if dense:
        elapsed, cap = seconds(lambda: capture(model, clip, dense=True))
        row.update(dense_s=elapsed, dense_mb=cap.nbytes() / MB)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-dense", action="store_true", help="skip the dense capture (the 'before' bytes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), batch 1, median of {args.repeats}; "
          "a shared CPU: times move with other jobs")
    print(f"{'model':<18}{'input':>10}{'plain s':>9}{'capture s':>11}{'ratio':>7}{'lazy MB':>9}"
          f"{'fp16 MB':>9}{'dense MB':>10}{'query ms':>10}")
    rows = []
    for name in args.models:
        row = bench(name, args.repeats, not args.no_dense)
        rows.append(row)
        print(f"{name:<18}{row['input']:>10}{row['plain_s']:>9.1f}{row['capture_s']:>11.1f}"
              f"{row['capture_s'] / row['plain_s']:>7.2f}{row['lazy_mb']:>9.1f}{row['float16_mb']:>9.1f}"
              f"{row.get('dense_mb', float('nan')):>10.1f}{row['query_ms']:>10.1f}", flush=True)
    out = ROOT / "bench" / "results" / "bench_capture.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(out.read_text(encoding="utf-8")).get("rows", []) if out.is_file() else []
    measured = {row["model"] for row in rows}     # one row per model: this run's replaces an earlier one
    rows = [row for row in earlier if row["model"] not in measured] + rows
    out.write_text(json.dumps({"threads": args.threads, "repeats": args.repeats, "rows": rows}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
