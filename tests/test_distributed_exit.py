"""A torchrun worker of our command line ends with os._exit (distributed.run_as_process).

torch 2.13's DDP keeps gloo's worker threads alive past destroy_process_group,
and Python's finalization then tears one down mid-release: SIGABRT in about
1 of 8 runs of a small DDP script here. These check the exit path keeps what
a command line promises: its status, its error text, its flushed output, and
the ordinary sys.exit outside torchrun.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPO

SCRIPT = textwrap.dedent("""
    import atexit, sys
    from gta_core.distributed import run_as_process
    atexit.register(lambda: print("finalized", flush=True))
    def main():
        print("output", end="")          # no newline, no flush: run_as_process flushes it
        kind = sys.argv[1]
        if kind == "status":
            return 3
        if kind == "message":
            raise SystemExit("error: --data is required")
        raise ValueError("a bug")
    run_as_process(main)
""")


def run(kind: str, world_size: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORLD_SIZE": world_size, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", SCRIPT, kind], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("kind, status, stderr", [
    ("status", 3, ""), ("message", 1, "error: --data is required"), ("raise", 1, "ValueError: a bug"),
])
def test_torchrun_worker_keeps_status_message_and_output_but_skips_finalization(kind, status, stderr):
    worker = run(kind, "2")
    assert worker.returncode == status and worker.stdout == "output"     # flushed; atexit did not run
    assert stderr in worker.stderr
    plain = run(kind, "1")
    assert plain.returncode == status and plain.stdout == "outputfinalized\n"
    assert stderr in plain.stderr
