"""evaluate and compare with test views: each clip's views run and are averaged as the config says."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gta_core import load_checkpoint
from gta_core.data.ssv2 import template_to_class
from gta_core.video import ClipSpec, read_clip

from .helpers import one_thread  # noqa: F401  (fixture)
from .test_evaluate import make_checkpoint, run_cli
from .test_train import data_root  # noqa: F401  (fixture: the tiny temporal set, 15 validation clips)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_evaluate_averages_twice_sampled_views(data_root, tmp_path):  # noqa: F811
    """(The "score" average is checked on compare's rows in tests/test_compare_3d.py.)"""
    average = "prob"
    folder = make_checkpoint(tmp_path / "dnl", data_root, "demo_r2d18_dnl")
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config.update(twice_sample=True, average_views=average)       # TSM's test: centres, then segment starts
    config_path.write_text(json.dumps(config))
    run = run_cli("evaluate", str(folder), "--data", str(data_root), "--json", "--no-reversed")
    assert run.returncode == 0, run.stderr[-2000:]
    evaluated = json.loads(run.stdout)
    checkpoint = load_checkpoint(folder)
    spec = ClipSpec.from_config(checkpoint.config.to_dict())
    assert spec.num_views == 2
    rows = json.loads((data_root / "validation.json").read_text())
    names = checkpoint.config.class_names
    correct = 0
    for row in rows:
        clip = read_clip(next(Path(data_root, "videos").glob(f"{row['id']}.*")), spec, all_views=True)
        assert clip.view_frame_indices[0] != clip.view_frame_indices[1]
        with torch.no_grad():
            logits = checkpoint.model(clip.views)                                   # (2 views, K)
        scores = logits.softmax(-1).mean(0) if average == "prob" else logits.mean(0)
        label = template_to_class(row["template"])
        correct += names[int(scores.argmax())] == label
    assert evaluated["top1"] == pytest.approx(correct / len(rows))
