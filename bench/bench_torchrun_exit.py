"""How often a torchrun worker aborts at exit, with and without distributed.run_as_process.

    .venv/bin/python bench/bench_torchrun_exit.py [--runs 30] [--busy 2]

A 15-line DDP script (gloo on the CPU: a Linear, two steps, all_gather_object,
barrier, destroy_process_group) is launched `--runs` times with
`torch.distributed.run --nproc_per_node 2`, once ending as a plain script and
once through run_as_process (os._exit for a torchrun worker). `--busy`
spinning processes take the cores the way CI's second pytest worker does:
the abort ("terminate called without an active exception", SIGABRT) is a
race at interpreter shutdown and shows under load. Prints the failed runs of
each variant.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BODY = textwrap.dedent("""
    import torch, torch.distributed as dist
    from torch import nn
    from gta_core.distributed import run_as_process

    def main():
        dist.init_process_group("gloo")
        model = nn.parallel.DistributedDataParallel(nn.Linear(4, 2))
        optimizer = torch.optim.SGD(model.parameters(), 0.1)
        for _ in range(2):
            model(torch.randn(3, 4)).sum().backward()
            optimizer.step()
        gathered = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, dist.get_rank())
        dist.barrier()
        dist.destroy_process_group()
        return 0
""")
ENDINGS = {"plain exit": "raise SystemExit(main())\n", "run_as_process": "run_as_process(main)\n"}


def spin() -> None:
    while True:
        pass


def failures(script: Path, runs: int) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    return sum(subprocess.run(command, env=env, capture_output=True, timeout=300).returncode != 0 for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--busy", type=int, default=2, help="spinning processes beside the runs")
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for process in spinners:
        process.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            for name, ending in ENDINGS.items():
                script = Path(folder) / "ddp.py"
                script.write_text(BODY + ending)
                print(f"{name:15s} {failures(script, args.runs):3d} of {args.runs} runs aborted", flush=True)
    finally:
        for process in spinners:
            process.terminate()


if __name__ == "__main__":
    main()
