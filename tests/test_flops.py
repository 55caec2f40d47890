"""The paper's Table 1 and Table 6, reproduced by our counter, and the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gta_core.flops import measure_cost

ROOT = Path(__file__).resolve().parents[1]

# name: (paper params M, paper GFLOPs, GFLOPs tolerance) at 8×224², 174 classes.
TABLE = {
    "r2d50": (23.9, 32.7, 0.2),
    "r2d50_nl": (31.2, 61.1, 0.2),
    "r2d50_dnl": (31.2, 49.9, 1.0),
    "r2d50_gta": (31.2, 50.2, 1.0),
    "r2d50_sa": (27.5, 41.7, 1.0),    # Table 6
    "r2d50_ta": (27.5, 41.0, 1.0),
    "r2d50_tape": (31.2, 49.9, 1.0),
}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_paper_cost(name):
    params, gflops, tolerance = TABLE[name]
    cost = measure_cost(name)
    assert abs(cost.params_m - params) <= 0.1
    assert abs(cost.gflops - gflops) <= tolerance


def test_exact_counts_of_the_backbone_and_nl():
    # ResNet-50 without its 1000-way classifier is 23,508,032 parameters;
    # a 174-way one adds 2048·174 + 174.
    assert measure_cost("r2d50").params == 23_508_032 + 2048 * 174 + 174
    nl = measure_cost("r2d50_nl")
    # Each NL block: θ, φ, g (C → C/2, with bias), W^O (C/2 → C, with bias), BN (2C).
    per_block = lambda c: 3 * (c * c // 2 + c // 2) + (c // 2 * c + c) + 2 * c
    assert nl.params - measure_cost("r2d50").params == 2 * per_block(512) + 3 * per_block(1024)


def test_flops_cli_json():
    result = subprocess.run(
        [sys.executable, "-m", "gta_core", "flops", "r2d50", "r2d50_gta", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["r2d50"]["gflops"] == pytest.approx(32.7, abs=0.05)
    assert rows["r2d50_gta"]["paper_gflops"] == 50.2


def test_flops_cli_other_shapes_and_unknown_model():
    result = subprocess.run(
        [sys.executable, "-m", "gta_core", "flops", "r2d50", "--frames", "16", "--classes", "400"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    # R2D is per-frame: twice the frames, twice the FLOPs (the classifier too); no paper column.
    line = next(l for l in result.stdout.splitlines() if l.startswith("r2d50"))
    assert float(line.split()[2]) == pytest.approx(2 * (32.7 + 8 * 2048 * (400 - 174) / 1e9), abs=0.05)
    assert line.split()[3] == "-"
    bad = subprocess.run([sys.executable, "-m", "gta_core", "flops", "r2d99"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown model 'r2d99'" in bad.stdout
