"""evaluate and predict: hand-checked metrics, determinism, torchrun == one process."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gta_core import CheckpointConfig, create_model, load_checkpoint, save_checkpoint
from gta_core.__main__ import main
from gta_core.data import synth
from gta_core.data.ssv2 import SSv2Dataset
from gta_core.evaluate import compute_metrics, predict_logits, reversed_targets
from gta_core.video import ClipSpec

from .helpers import activate_blocks
from .test_train import REPO, TINY, data_root  # noqa: F401  (data_root: the tiny temporal set fixture)


def make_checkpoint(folder: Path, data_root: Path, name: str) -> Path:
    names = SSv2Dataset(data_root, "validation", ClipSpec(4, 28, 32)).class_names
    torch.manual_seed(0)
    model = activate_blocks(create_model(name, num_classes=len(names), **TINY).eval())
    config = CheckpointConfig(architecture=model.config.to_dict(), class_names=names, model_name=name,
                              input_size=28, resize_shorter=32)
    return save_checkpoint(folder, model, config)


@pytest.fixture(scope="module")
def gta_checkpoint(data_root, tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "gta", data_root, "demo_r2d18_gta")


def run_cli(*args: str, nproc: int = 0) -> subprocess.CompletedProcess:
    """`python -m gta_core ARGS` in-process (fast), or under torchrun with `nproc` processes."""
    if not nproc:
        args = (*args, "--threads", "1") if args[0] == "evaluate" else args
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    return subprocess.run([*launcher, "-m", "gta_core", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_metrics_by_hand():
    names = ["a", "b", "c"]
    logits = np.array([[3, 2, 1], [0, 1, 5], [1, 4, 0], [2, 1, 0]], dtype=np.float32)
    labels = np.array([0, 1, 1, 2])
    m = compute_metrics(logits, labels, names, reversed_logits=logits[:, ::-1].copy(),
                        reversed_labels=np.array([2, 1, 1, 0]))
    assert m["top1"] == 0.5                          # clips 0 and 2
    assert m["top5"] == 1.0                          # 3 classes: top-5 is all of them
    assert m["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    # Reversed predictions: argmax of the mirrored logits is 2, 0, 1, 2 -> right for clips 0 and 2.
    assert m["reversed_top1"] == 0.5 and m["both_directions_top1"] == 0.5
    expected_loss = -np.mean([np.log(np.exp(r[y]) / np.exp(r).sum()) for r, y in zip(logits, labels)])
    assert m["loss"] == pytest.approx(expected_loss, rel=1e-6)


def test_reversed_targets_follow_reverse_pairs(data_root):
    names = SSv2Dataset(data_root, "validation", ClipSpec(4, 28, 32)).class_names
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index["Moving something up"], index["Uncovering something"],
                       index["Pretending to turn something"]])
    assert [names[i] for i in reversed_targets(data_root, names, labels)] == [
        "Moving something down", "Covering something with something", "Pretending to turn something"]


def test_order_invariant_models_give_reversed_clips_the_same_logits(data_root, tmp_path):
    """What the model card says: R2D (and NL, DNL) cannot tell a clip from its reversal; GTA can."""
    for name, invariant in (("demo_r2d18", True), ("demo_r2d18_dnl", True), ("demo_r2d18_gta", False)):
        ckpt = load_checkpoint(make_checkpoint(tmp_path / name, data_root, name))
        dataset = SSv2Dataset(data_root, "validation", ClipSpec(4, 28, 32), train=False)
        logits, _, rev = predict_logits(ckpt.model, dataset, batch_size=8, with_reversed=True)
        assert np.allclose(logits, rev, atol=1e-4) is invariant, name


def test_evaluate_is_deterministic_and_torchrun_matches_one_process(data_root, gta_checkpoint):
    args = ("evaluate", str(gta_checkpoint), "--data", str(data_root), "--json", "--batch-size", "4")
    first, second, ddp = run_cli(*args), run_cli(*args), run_cli(*args, nproc=2)
    for run in (first, second, ddp):
        assert run.returncode == 0, run.stderr[-3000:]
    a, b, c = (json.loads(r.stdout) for r in (first, second, ddp))
    assert a == b
    assert a.pop("world_size") == 1 and c.pop("world_size") == 2
    assert a == c, "two torchrun processes must report exactly the one-process numbers"
    assert a["num_clips"] == 15 and sum(map(sum, a["confusion_matrix"])) == 15
    assert set(a) >= {"top1", "top5", "per_class_accuracy", "confusion_matrix", "reversed_top1"}


def test_evaluate_text_report_and_refusals(data_root, gta_checkpoint, tmp_path):
    text = run_cli("evaluate", str(gta_checkpoint), "--data", str(data_root))
    assert text.returncode == 0, text.stderr[-2000:]
    assert "top-1" in text.stdout and "reversed" in text.stdout and "confusion matrix" in text.stdout
    other = synth.generate(tmp_path / "appearance", seed=1, variant="appearance", videos_per_class=1,
                           size="32x40", frames=4, workers=1)
    refused = run_cli("evaluate", str(gta_checkpoint), "--data", str(other), "--split", "train")
    assert refused.returncode == 2 and "classes the checkpoint does not know" in refused.stderr


def test_predict_gives_sorted_topk(data_root, gta_checkpoint):
    video = sorted((data_root / "videos").glob("*.webm"))[0]
    run = run_cli("predict", str(gta_checkpoint), str(video), "--topk", "3", "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    probs = [p["probability"] for p in result["predictions"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    names = load_checkpoint(gta_checkpoint).config.class_names
    assert all(names[p["index"]] == p["class"] for p in result["predictions"])
    assert len(result["frame_indices"]) == 4
