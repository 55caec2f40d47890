"""Peak memory and outcome of every crafted input of tests/security/crafted.py.

    python bench/bench_untrusted.py [--repo DIR] [--only NAME ...] [--json OUT.json]

Each input runs in its own harness process (tests/security/harness.py: the CLI
in-process, so ru_maxrss of RUSAGE_SELF is the parent's peak and RUSAGE_CHILDREN
the reader's), with PYTHONPATH=--repo (default: this checkout) so an older
checkout can be measured with the same inputs. The harness runs under a soft
5 GiB address-space limit so a regression fails here instead of swapping the box.
Pickles go through `import mmaction2`, configs through `info`, videos through
`predict` on a good tiny checkpoint. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.security import crafted  # noqa: E402

SOFT_AS_LIMIT = 5 << 30


def cases(folder: Path) -> list[dict]:
    good = crafted.good_checkpoint(folder / "good")
    out = []
    for name, build in crafted.PICKLES.items():
        out.append({"name": f"pickle {name}", "argv": ["import", "mmaction2", str(build(folder)), "--out", str(folder / f"out_{name}")]})
    for name in crafted.CONFIG_CHANGES:
        out.append({"name": f"config {name}", "argv": ["info", str(crafted.crafted_config(folder, name, good))]})
    for name, build in crafted.VIDEOS.items():
        out.append({"name": f"video {name}", "argv": ["predict", str(good), str(build(folder)), "--device", "cpu"]})
    return out


def _soft_limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (SOFT_AS_LIMIT, resource.RLIM_INFINITY))


def run_case(case: dict, repo: Path, folder: Path) -> dict:
    cases_file = folder / "case.json"
    cases_file.write_text(json.dumps([case]))
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "tests/security/harness.py"), str(cases_file)],
                          capture_output=True, text=True, cwd=folder, env=env, preexec_fn=_soft_limit, timeout=900)
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"name": case["name"], "code": f"harness died ({done.returncode}): {tail[:120]}", "stderr": [],
                "parent_peak_mib": None, "child_peak_mib": None}
    return json.loads(lines[-1])


def outcome(row: dict) -> str:
    lines = row["stderr"]
    text = lines[-1] if lines else ""
    return f"exit {row['code']}, {len(lines)} line(s): {text[:110]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", default=str(ROOT))
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gta-bench-untrusted-") as tmp:
        folder = Path(tmp)
        for case in cases(folder):
            if args.only and not any(word in case["name"] for word in args.only):
                continue
            row = run_case(case, Path(args.repo), folder)
            rows.append(row)
            print(f"| {row['name']} | {row['parent_peak_mib']} | {row['child_peak_mib']} | {outcome(row)} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
