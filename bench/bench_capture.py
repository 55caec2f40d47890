"""Forward latency with and without capture, and the memory the records hold.

R2D-50 variants at 8×224² (or, with --3d, I3D-R50-NL at 32×224² and
SlowFast-R50 variants at 64×256²: each model at its own default input),
batch 1, random weights, on this machine's CPU (and on CUDA when present).
Prints a table; all figures come from one run.

    python bench/bench_capture.py [--repeats 5] [--models r2d50_nl r2d50_gta] [--3d]

Targets (issue 2): capture ≤ 1.25× a plain forward; r2d50_nl records ≤ 256 MB.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gta_core import capture, create_model  # noqa: E402
from gta_core.models import model_config  # noqa: E402

MODELS = ["r2d50", "r2d50_nl", "r2d50_dnl", "r2d50_tape", "r2d50_gta"]
MODELS_3D = ["i3d_r50_nl", "slowfast_r50", "slowfast_r50_nl", "slowfast_r50_dnl", "slowfast_r50_gta"]


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
    config = model_config(name)
    clip = torch.randn(1, 3, config.num_frames, config.input_size, config.input_size, device=device)

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
        "input": f"{config.num_frames}×{config.input_size}²",
        "plain_ms": 1000 * statistics.median(plain_s),
        "capture_ms": 1000 * statistics.median(capture_s),
        "record_mb": record_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--3d", dest="three_d", action="store_true", help="the 3D models (I3D, SlowFast)")
    args = parser.parse_args()
    args.models = args.models or (MODELS_3D if args.three_d else MODELS)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; batch 1, median of {args.repeats}")
    if not torch.cuda.is_available():
        print("no CUDA device here: GPU figures not measured")
    for device in devices:
        print(f"\n{device.type}: {'model':<18}{'input':>10}{'plain ms':>10}{'capture ms':>12}{'ratio':>8}{'records MB':>12}")
        for name in args.models:
            row = bench(name, device, args.repeats)
            ratio = row["capture_ms"] / row["plain_ms"]
            print(f"{'':5}{row['model']:<18}{row['input']:>10}{row['plain_ms']:>10.0f}{row['capture_ms']:>12.0f}{ratio:>8.2f}{row['record_mb']:>12.1f}")


if __name__ == "__main__":
    main()
