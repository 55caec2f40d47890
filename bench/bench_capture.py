"""Forward latency with and without capture, and the memory the records hold.

R2D-50 variants at 8×224², batch 1, random weights, on this machine's CPU
(and on CUDA when present). Prints a table; all figures come from one run.

    python bench/bench_capture.py [--repeats 5] [--models r2d50_nl r2d50_gta]

Targets (issue 2): capture ≤ 1.25× a plain forward; r2d50_nl records ≤ 256 MB.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gta_core import capture, create_model  # noqa: E402

MODELS = ["r2d50", "r2d50_nl", "r2d50_dnl", "r2d50_tape", "r2d50_gta"]


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench(name: str, device: torch.device, repeats: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name).to(device).eval()
    clip = torch.randn(1, 3, 8, 224, 224, device=device)

    def plain():
        with torch.inference_mode():
            model(clip)

    def captured():
        capture(model, clip)

    plain(), captured()  # warm-up
    # Interleave the two so that drift in machine load hits both alike.
    plain_s, capture_s = [], []
    for _ in range(repeats):
        plain_s.append(timed(plain, device))
        capture_s.append(timed(captured, device))
    record_mb = capture(model, clip).nbytes() / 2**20
    return {
        "model": name,
        "plain_ms": 1000 * statistics.median(plain_s),
        "capture_ms": 1000 * statistics.median(capture_s),
        "record_mb": record_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=MODELS)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; batch 1, 8×224², median of {args.repeats}")
    if not torch.cuda.is_available():
        print("no CUDA device here: GPU figures not measured")
    for device in devices:
        print(f"\n{device.type}: {'model':<12}{'plain ms':>10}{'capture ms':>12}{'ratio':>8}{'records MB':>12}")
        for name in args.models:
            row = bench(name, device, args.repeats)
            ratio = row["capture_ms"] / row["plain_ms"]
            print(f"{'':5}{row['model']:<12}{row['plain_ms']:>10.0f}{row['capture_ms']:>12.0f}{ratio:>8.2f}{row['record_mb']:>12.1f}")


if __name__ == "__main__":
    main()
