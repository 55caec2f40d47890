"""compare and export take a TimeSformer (the layout `import hf-timesformer` writes) beside a 2D GTA."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gta_core import CheckpointConfig, capture, load_checkpoint, save_checkpoint
from gta_core.data.ssv2 import SSv2Dataset
from gta_core.evaluate import dataset_for
from gta_core.models import VideoNet, VideoNetConfig
from gta_core.video.clip import ClipSpec

from .app.fixtures import write_video
from .helpers import one_thread  # noqa: F401  (fixture)
from .test_evaluate import make_checkpoint, run_cli
from .test_train import data_root  # noqa: F401  (fixture: the tiny temporal set)

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_TIMESFORMER = dict(backbone="timesformer", num_frames=4, input_size=32, tsf_patch_size=8, tsf_hidden_size=32,
                        tsf_layers=2, tsf_heads=4, tsf_mlp_size=64, dropout=0.0)


def timesformer_checkpoint(folder: Path, class_names: list[str]) -> Path:
    torch.manual_seed(0)
    model = VideoNet(VideoNetConfig(num_classes=len(class_names), **TINY_TIMESFORMER)).eval()
    with torch.no_grad():                       # unit-scale weights: attention rows far from uniform
        for value in model.parameters():
            value.copy_(torch.randn(value.shape) / (value.shape[-1] ** 0.5 if value.dim() > 1 else 2))
    config = CheckpointConfig(architecture=model.config.to_dict(), class_names=class_names, model_name="timesformer",
                              input_size=32, resize_shorter=32, mean=[0.45] * 3, std=[0.225] * 3)
    return save_checkpoint(folder, model, config)


def test_compare_a_timesformer_beside_a_gta(data_root, tmp_path):  # noqa: F811
    names = SSv2Dataset(data_root, "validation", ClipSpec(4, 28, 32)).class_names
    gta = make_checkpoint(tmp_path / "gta", data_root, "demo_r2d18_gta")
    tsf = timesformer_checkpoint(tmp_path / "tsf", names)
    run = run_cli("compare", str(gta), str(tsf), "--data", str(data_root), "--batch-size", "4", "--no-cache", "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    stats = report["temporal_stats"]["tsf"]
    assert set(stats) == {"layer.0", "layer.1"} and stats["layer.1"]["kind"] == "DIVIDED"
    # The class mean of TA weights, by hand: capture each clip of one class, average over patches, then clips.
    checkpoint = load_checkpoint(tsf)
    dataset = dataset_for(checkpoint, data_root, "validation", "auto")
    labels = np.array([dataset[i][1] for i in range(len(dataset))])
    label = int(labels[0])
    rows = [capture(checkpoint.model, dataset[i][0][None]).records["layer.1"].temporal.mean_matrix().numpy()
            for i in np.flatnonzero(labels == label)]
    per_class = np.asarray(stats["layer.1"]["per_class"][names[label]])
    np.testing.assert_allclose(per_class, np.mean(rows, axis=0), atol=1e-5)
    np.testing.assert_allclose(per_class.sum(axis=1), 1.0, atol=1e-5)


def export_html(first: Path, second: Path, folder: Path) -> str:
    """`export` of two checkpoints on one short video (attributions, block knockouts): its figures.html."""
    videos = folder / "videos"
    videos.mkdir()
    write_video(videos / "clip.mp4", frames=12, size=(56, 72), seed=0)
    run = run_cli("export", str(first), str(second), str(videos), "--out", str(folder / "out"), "--ig-steps", "2",
                  "--internal-batch-size", "2", "--knockout", "blocks", "--no-progress",
                  "--browser", str(folder / "no-chromium-here"))
    assert run.returncode == 0, run.stderr[-3000:]
    return (folder / "out" / "clip" / "figures.html").read_text(encoding="utf-8")


def test_export_a_timesformer_beside_a_gta(data_root, tmp_path):  # noqa: F811
    names = SSv2Dataset(data_root, "validation", ClipSpec(4, 28, 32)).class_names
    gta = make_checkpoint(tmp_path / "gta", data_root, "demo_r2d18_gta")
    tsf = timesformer_checkpoint(tmp_path / "tsf", names)
    html = export_html(tsf, gta, tmp_path)
    assert "layer.1: spatial, frame 2" in html and "layer.1: temporal weights of frame 2" in html
    assert "res3.1: spatial, frame 2" in html
