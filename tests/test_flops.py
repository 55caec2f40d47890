"""The paper's Table 1 and Table 6, reproduced by our counter, and the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gta_core import create_model
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


# Table 1's 3D rows: SlowFast-R50 16×8 (64 frames, the Slow pathway every 4th) at 256², 174 classes.
# name: (params M, GFLOPs) measured, pinned to the printed digits, and the paper's.
TABLE_3D = {
    "slowfast_r50": ((34.05, 131.42), (34.0, 131.4)),
    "slowfast_r50_nl": ((41.40, 239.86), (41.4, 239.9)),
    "slowfast_r50_dnl": ((41.42, 169.10), (41.4, 169.1)),
    "slowfast_r50_gta": ((41.57, 170.99), (41.4, 169.9)),   # params: see the test below
}


def slowfast_cost(name: str):
    return measure_cost(name, frames=64, size=256)


@pytest.mark.parametrize("name", sorted(TABLE_3D))
def test_paper_cost_3d(name):
    (params, gflops), (paper_params, paper_gflops) = TABLE_3D[name]
    cost = slowfast_cost(name)
    assert (round(cost.params_m, 2), round(cost.gflops, 2)) == (params, gflops)
    assert abs(cost.gflops - paper_gflops) <= 1.5
    if name != "slowfast_r50_gta":
        assert abs(cost.params_m - paper_params) <= 0.1


def test_slowfast_gta_params_above_the_paper_are_its_temporal_matrices():
    """GTA is 0.175 M over the paper's 41.4 M: its ten learned M̂ (pixel and region in each of the
    5 blocks), each G×G×T'×T' = 8×8×16×16 over the Slow pathway's T' = 16 steps of a 64-frame clip.
    Without them GTA is the paper's 41.4 M, as DNL is."""
    with torch.device("meta"):
        model = create_model("slowfast_r50_gta", num_frames=64)
    matrices = [p for n, p in model.named_parameters() if n.endswith(("pixel_matrix", "region_matrix"))]
    assert [tuple(m.shape) for m in matrices] == [(8, 8, 16, 16)] * 10
    m_hat = sum(m.numel() for m in matrices)
    gta, dnl = slowfast_cost("slowfast_r50_gta").params, slowfast_cost("slowfast_r50_dnl").params
    assert m_hat == 163_840 and abs((gta - m_hat) / 1e6 - 41.4) <= 0.02
    # To the parameter: per block of C channels GTA's temporal part without M̂ has C² + 39C/16
    # (W_V^P C -> C/4 with bias, W_P^O without, W_G C -> C/8 and W_V^R C -> 3C/16 with bias, W_R^O
    # without, BatchNorm 2C) and TA's C² + 60C/16 (θ, φ, g C -> C/4 and W^O, all with bias, BatchNorm),
    # so GTA - DNL is M̂ less 21C/16 per block, for the blocks at 512, 512, 1024, 1024, 1024 channels.
    assert gta - dnl == m_hat - sum(21 * c // 16 for c in (512, 512, 1024, 1024, 1024))


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
