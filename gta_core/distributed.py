"""One process or `torchrun --nproc_per_node N`: the few helpers train and evaluate share.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything runs as
rank 0 of 1 and no process group is created. The backend is NCCL when the
processes use GPUs and gloo on the CPU.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class DeviceError(RuntimeError):
    """The device asked for is not there (e.g. --device cuda on a machine without a GPU)."""


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:LOCAL_RANK when a GPU is there, else cpu; 'cpu' / 'cuda' as asked."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("--device cuda was asked for but torch sees no GPU")
        return torch.device("cuda", local_rank)
    if requested != "cpu":
        raise ValueError(f"device must be auto, cpu or cuda, got {requested!r}")
    return torch.device("cpu")


def init_distributed(requested_device: str = "auto", threads: int = 0) -> DistEnv:
    """Join the torchrun process group if there is one; pick the device and CPU threads.

    threads: CPU threads per process; 0 = OMP_NUM_THREADS when set, else the
    cores divided among this machine's processes. On a machine other jobs share,
    ask for 1: an OpenMP team waiting for a descheduled thread runs several
    times slower than one thread alone.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if threads > 0:
        torch.set_num_threads(threads)
    elif device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # N processes on one machine share its cores (torchrun sets OMP_NUM_THREADS=1
        # itself when N > 1; this covers launchers that do not).
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // max(1, local_world)))
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def all_gather_objects(env: DistEnv, obj) -> list:
    """Every rank's `obj`, in rank order (a one-element list without a process group)."""
    if not env.enabled:
        return [obj]
    out: list = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def broadcast_object(env: DistEnv, obj, src: int = 0):
    if not env.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shutdown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def is_torchrun_worker() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def run_as_process(main: Callable[[], int]) -> NoReturn:
    """Run a command line's `main` and end the process with its status.

    A torchrun worker ends with os._exit once its output is flushed, skipping
    Python's finalization. In torch 2.13 a DistributedDataParallel model keeps
    its gloo process group alive after destroy_process_group (the group's
    worker threads are joined only when it is freed, and DDP never frees it).
    A worker thread still releasing its last collective then reaches for the
    GIL while the interpreter shuts down, is torn down, and libstdc++ aborts
    the process ("terminate called without an active exception", SIGABRT):
    4 of 30 runs of a 15-line DDP script on a loaded 2-core machine, and the
    CI's torchrun test. Every file is written and closed before main returns.
    """
    if not is_torchrun_worker():
        sys.exit(main())
    try:
        status = main()
    except SystemExit as stop:          # argparse errors, `raise SystemExit("error: ...")`
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:               # what the interpreter would print, and its status 1
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
