"""Shared fixtures of the fuzz suite: the crafted inputs, built once per session."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security import crafted

REPO = Path(__file__).resolve().parents[2]
PEAK_LIMIT_MIB = 1024


@pytest.fixture(scope="session")
def pickles(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pickles")
    return {name: build(folder) for name, build in crafted.PICKLES.items()}


@pytest.fixture(scope="session")
def good_checkpoint(tmp_path_factory) -> Path:
    return crafted.good_checkpoint(tmp_path_factory.mktemp("good") / "good")


def run_harness(cases: list[dict], cwd: Path) -> list[dict]:
    """tests/security/harness.py in a subprocess (cwd `cwd`, this checkout first on PYTHONPATH): one row per case."""
    cases_file = cwd / "cases.json"
    cases_file.write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "tests/security/harness.py"), str(cases_file)],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.strip().splitlines()]


def assert_refused(row: dict) -> None:
    """exit 2, one `error:` line, both peaks under PEAK_LIMIT_MIB."""
    assert row["code"] == 2, row
    assert len(row["stderr"]) == 1 and row["stderr"][0].startswith("error: "), row
    assert row["parent_peak_mib"] < PEAK_LIMIT_MIB and row["child_peak_mib"] < PEAK_LIMIT_MIB, row
