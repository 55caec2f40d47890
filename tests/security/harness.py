"""Run `python -m gta_core ...` commands in this process and report their peak memory.

    python tests/security/harness.py CASES.json

CASES.json is a list of {"name": ..., "argv": [...]} (the words after `python -m gta_core`).
Each command runs in-process, one after another; after each, one JSON line is printed:
{"name", "code", "stderr" (the lines it printed), "parent_peak_mib" (VmHWM of this
process so far), "child_peak_mib" (the largest ru_maxrss of any child so far, e.g. the
safe_load reader)}. Peaks only grow, so a line's figures bound every command up to it.

The parent's peak is read from /proc (VmHWM: this address space since exec), not from
ru_maxrss: Linux keeps ru_maxrss across execve, so a harness started by a pytest process
that already holds 1.6 GB would report that. A child's ru_maxrss likewise starts at this
process's size when it was forked (about 0.3 GB): an upper bound, never an underestimate.
The gta_core imported is the first on sys.path: set PYTHONPATH to measure another checkout.
"""
from __future__ import annotations

import contextlib
import io
import json
import resource
import sys


def _own_peak_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024     # KiB
    raise RuntimeError("no VmHWM in /proc/self/status")


def _children_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024   # Linux reports KiB


def main(cases_file: str) -> None:
    from gta_core.__main__ import main as cli_main

    for case in json.loads(open(cases_file).read()):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli_main(case["argv"])
            except SystemExit as stop:
                code = stop.code
            except BaseException as error:  # noqa: BLE001 - what escapes the CLI is the finding
                code = f"raised {type(error).__name__}: {str(error)[:200]}"
        print(json.dumps({
            "name": case["name"], "code": code, "stderr": stderr.getvalue().strip().splitlines(),
            "parent_peak_mib": round(_own_peak_mib(), 1),
            "child_peak_mib": round(_children_peak_mib(), 1),
        }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
