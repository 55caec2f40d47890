"""compare and its class-level TA statistics on SlowFast models beside a 2-D one.

The Slow pathway's TA / DNL / TAPE blocks have T' = T/α time steps, so their
per-class matrices are T'×T' while the R2D model's are T×T; each slot of a
ClipRows row takes its size from its block's `time_spans`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gta_core import capture, load_checkpoint
from gta_core.checkpoint import CheckpointConfig, save_checkpoint
from gta_core.comparison import ClipRows
from gta_core.data.ssv2 import SSv2Dataset
from gta_core.evaluate import dataset_for
from gta_core.models import create_model
from gta_core.video import ClipSpec

from .helpers import activate_blocks, one_thread  # noqa: F401  (fixture)
from .test_evaluate import run_cli
from .test_train import data_root  # noqa: F401  (fixture: the tiny temporal set, 15 validation clips)

pytestmark = pytest.mark.usefixtures("one_thread")
SLOWFAST = ("demo_slowfast_r50_dnl", "demo_slowfast_r50_tape")
SIZES = {"r2d": dict(num_frames=4, width_multiplier=0.125, gta_groups=2),
         "slowfast": dict(num_frames=8, width_multiplier=0.125, gta_groups=2)}


def tiny(folder: Path, data_root: Path, name: str) -> Path:  # noqa: F811
    names = SSv2Dataset(data_root, "validation", ClipSpec(4, 28, 32)).class_names
    torch.manual_seed(0)
    sizes = SIZES["slowfast" if "slowfast" in name else "r2d"]
    model = activate_blocks(create_model(name, num_classes=len(names), **sizes).eval())
    config = CheckpointConfig(architecture=model.config.to_dict(), class_names=names, model_name=name,
                              input_size=32, resize_shorter=32)
    return save_checkpoint(folder, model, config)


@pytest.fixture(scope="module")
def checkpoints(data_root, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("compare_3d")
    return [str(tiny(root / name, data_root, name)) for name in ("demo_r2d18_dnl", *SLOWFAST)]


def test_compare_slowfast_beside_r2d(data_root, checkpoints, tmp_path):  # noqa: F811
    run = run_cli("compare", *checkpoints, "--data", str(data_root), "--batch-size", "8", "--json",
                  "--threads", "1", "--cache-dir", str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    stats = report["temporal_stats"]
    r2d = stats["demo_r2d18_dnl"]["res3.1"]
    assert np.asarray(next(iter(r2d["per_class"].values()))).shape == (4, 4)
    for name in SLOWFAST:
        blocks = stats[name]
        assert blocks and all(b.startswith("slow.") for b in blocks)
        for block, values in blocks.items():
            matrices = np.asarray(list(values["per_class"].values()))
            assert matrices.shape[1:] == (2, 2), block                      # 8 frames / α = 4: two Slow steps
            np.testing.assert_allclose(matrices.sum(axis=2), 1.0, atol=1e-5)   # softmax rows
    # The class mean of one SlowFast block, recomputed from `capture` clip by clip.
    checkpoint = load_checkpoint(checkpoints[1])
    dataset = dataset_for(checkpoint, data_root, "validation", "auto")
    names = checkpoint.config.class_names
    block = next(iter(stats[SLOWFAST[0]]))
    label = dataset.samples[0][1]
    clips = [dataset[i][0] for i, sample in enumerate(dataset.samples) if sample[1] == label]
    expected = np.mean([capture(checkpoint.model, c[None]).records[block].temporal.mean_matrix().numpy()
                        for c in clips], axis=0)
    np.testing.assert_allclose(stats[SLOWFAST[0]][block]["per_class"][names[label]], expected, atol=1e-5)


def test_clip_rows_average_test_views(checkpoints):
    """(B, V, ...) clips: logits averaged as the source says, TA weights over the views."""
    model = load_checkpoint(checkpoints[1]).model
    views = torch.randn(2, 3, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    for average in ("prob", "score"):
        rows = ClipRows([model], [0], [15], average)
        out = rows.split(rows(views).detach().numpy())
        per_view = torch.stack([model(views[:, v]) for v in range(3)], dim=1).detach()     # (B, V, K)
        expected = per_view.mean(1) if average == "score" else per_view.softmax(-1).mean(1).log()
        np.testing.assert_allclose(out[(0, "logits")], expected.numpy(), rtol=1e-4, atol=1e-5)
    block = rows.blocks[0][0]
    weights = [capture(model, views[:, v]).records[block].temporal.weights.mean(dim=(1, 2)) for v in range(3)]
    np.testing.assert_allclose(out[(0, block)], torch.stack(weights).mean(0).numpy(), atol=1e-5)
