"""Training throughput (clips/s): forward + backward + AdamW step on random clips.

    python bench/bench_train.py [--steps 5] [--json bench/results/train.json]

Rows: the demo GTA (demo_r2d18_gta) at 8×112² with one thread (what
`train --threads 1` uses on a shared machine) and with all cores, and at 8×64²
with one thread; batch 16, on this machine's CPU; and
r2d50_gta at 8×224², batch 8, float16 autocast, on CUDA when a GPU is present.
Data loading is not included (the trainer's --cache-frames makes it small).
The median step time over --steps timed steps (after 2 warm-up steps) is
reported; on a shared machine the load average is printed beside it, since
other processes change the figure.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from gta_core import create_model  # noqa: E402


def bench(name: str, size: int, batch: int, device: torch.device, steps: int, amp: bool, threads: int = 0) -> dict:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(name, num_classes=174).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    clips = torch.randn(batch, 3, 8, size, size, device=device)
    labels = torch.randint(0, 174, (batch,), device=device)

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = F.cross_entropy(model(clips).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step(), step()
    seconds = statistics.median(step() for _ in range(steps))
    return {
        "model": name, "input": f"8x{size}x{size}", "batch": batch,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "amp": amp, "step_s": round(seconds, 4), "clips_per_s": round(batch / seconds, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "train.json")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = [
        bench("demo_r2d18_gta", 112, 16, torch.device("cpu"), args.steps, amp=False, threads=threads)
        for threads in sorted({1, cores})
    ] + [bench("demo_r2d18_gta", 64, 16, torch.device("cpu"), args.steps, amp=False, threads=1)]
    if torch.cuda.is_available():
        rows.append(bench("r2d50_gta", 224, 8, torch.device("cuda"), args.steps, amp=True))
    print(f"{'model':<16}{'input':>11}{'batch':>6}  {'device':<28}{'step (s)':>9}{'clips/s':>9}{'load':>6}")
    for r in rows:
        print(f"{r['model']:<16}{r['input']:>11}{r['batch']:>6}  {r['device']:<28}{r['step_s']:>9.3f}"
              f"{r['clips_per_s']:>9.2f}{r['load_average_1min']:>6.1f}")
    if not torch.cuda.is_available():
        print("no GPU here: the r2d50_gta 8×224² row needs one")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
