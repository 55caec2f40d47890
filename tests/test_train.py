"""The trainer: schedule, frame cache, checkpoint + metrics, exact resume, torchrun DDP."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gta_core.checkpoint import load_checkpoint
from gta_core.data import synth
from gta_core.data.ssv2 import SSv2Dataset
from gta_core.train import (
    CachedClips,
    TrainConfig,
    build_frame_cache,
    flip_allowed,
    lr_factor,
    make_optimizer,
    make_scheduler,
    train,
)
from gta_core.video import ClipSpec, normalise

REPO = Path(__file__).resolve().parents[1]
# A tiny R2D-18 + GTA: width ×0.125, 4 frames, 32² input.
TINY = {"width_multiplier": 0.125, "num_frames": 4, "gta_groups": 2}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    # 15 temporal classes × 2 videos: 15 train, 15 validation clips of 8 frames, 32×40.
    return synth.generate(tmp_path_factory.mktemp("synth"), seed=3, videos_per_class=2, size="32x40",
                          frames=8, workers=1)


def tiny_config(data_root: Path, out: Path, **changes) -> TrainConfig:
    values = dict(
        model="demo_r2d18_gta", data=str(data_root), out=str(out), model_overrides=dict(TINY),
        input_size=28, resize_shorter=32, epochs=2, batch_size=5, lr=1e-3, warmup_epochs=0.5,
        workers=0, threads=1, eval_batch_size=8, progress=False, cache_frames=True, reverse_aug=0.5, hflip=True,
    )
    values.update(changes)
    return TrainConfig(**values)


def test_lr_warms_up_linearly_then_follows_cosine_or_steps():
    cfg = TrainConfig(epochs=10, warmup_epochs=2, schedule="cosine")
    # 10 steps per epoch: 20 warm-up steps reach 1.0 at the 20th.
    assert lr_factor(cfg, 0, 10) == pytest.approx(1 / 20)
    assert lr_factor(cfg, 19, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 20, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 60, 10) == pytest.approx(0.5)          # half-way through the cosine
    assert lr_factor(cfg, 99, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 79 / 80)))
    step = TrainConfig(epochs=50, warmup_epochs=2, schedule="step", milestones=(30, 40, 45), gamma=0.1)
    assert [lr_factor(step, e * 10, 10) for e in (5, 29, 30, 40, 45, 49)] == pytest.approx(
        [1, 1, 0.1, 0.01, 0.001, 0.001])


def test_torch_scheduler_gives_each_group_lr_times_its_multiplier_times_the_schedule():
    """LambdaLR over lr_factor: the LRs of every step, hand-computed, for the three parameter groups
    (weights, BatchNorm and biases, GTA's M̂ at ×10); a resumed run rebuilt at step 5 continues them."""
    from gta_core import create_model

    cfg = TrainConfig(epochs=3, warmup_epochs=1, lr=0.1, matrix_lr_mult=10.0, schedule="cosine")
    model = create_model("demo_r2d18_gta", num_classes=4, **TINY)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_scheduler(cfg, optimizer, steps_per_epoch=4)
    seen = []
    for _ in range(12):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    # 4 warm-up steps to 1, then a cosine over the other 8 steps.
    factors = [0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert seen == [pytest.approx([0.1 * f, 0.1 * f, 1.0 * f], rel=1e-12) for f in factors]
    resumed = make_optimizer(cfg, model)
    make_scheduler(cfg, resumed, steps_per_epoch=4, step=5)
    assert [group["lr"] for group in resumed.param_groups] == pytest.approx(seen[5], rel=1e-12)


def test_tape_position_table_is_not_decayed():
    """A step with zero gradients: AdamW's decoupled decay shrinks the conv weights by (1 - lr·wd)
    and leaves TAPE's sin/cos table as it was (it is in the no-decay group, like biases)."""
    from gta_core import create_model

    cfg = TrainConfig(lr=0.1, weight_decay=0.5, optimizer="adamw")
    model = create_model("demo_r2d18_tape", num_classes=4, width_multiplier=0.125, num_frames=4)
    tables = {n: p for n, p in model.named_parameters() if n.endswith(".positional")}
    assert tables and all(p.ndim == 2 for p in tables.values())
    weight = model.backbone.stem[0].weight
    before = {n: p.detach().clone() for n, p in [*tables.items(), ("conv1", weight)]}
    optimizer = make_optimizer(cfg, model)
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert [decay_of[id(p)] for p in tables.values()] == [0.0] * len(tables)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    assert all(torch.equal(p, before[n]) for n, p in tables.items())
    torch.testing.assert_close(weight.detach(), before["conv1"] * (1 - 0.1 * 0.5))


def test_resume_of_a_finished_run_says_so_and_trains_nothing(data_root, tmp_path, capsys):
    from gta_core import CheckpointConfig, create_model, save_checkpoint
    from gta_core.__main__ import main

    model = create_model("demo_r2d18_gta", num_classes=15, **TINY)
    out = save_checkpoint(tmp_path / "done", model, CheckpointConfig(
        architecture=model.config.to_dict(), class_names=[str(i) for i in range(15)], model_name="demo_r2d18_gta",
        input_size=28, resize_shorter=32, provenance={"epochs_done": 2}, metrics={"val_top1": 0.25}))
    weights = (out / "model.safetensors").read_bytes()
    code = main(["train", "--data", str(data_root), "--out", str(out), "--resume", "--frames", "4",
                 "--set", "width_multiplier=0.125", "--set", "gta_groups=2", "--epochs", "2", "--no-progress"])
    assert code == 0
    err = capsys.readouterr().err
    assert "the run is finished (2 epochs" in err and "nothing to resume" in err
    assert (out / "model.safetensors").read_bytes() == weights and not (out / "metrics.jsonl").exists()
    assert train(tiny_config(data_root, out, resume=True)) == {"val_top1": 0.25}


def test_no_flip_for_classes_whose_meaning_a_mirror_changes():
    names = ["Moving something from left to right", "Turning something counterclockwise", "Moving something up"]
    assert flip_allowed(names).tolist() == [False, False, True]


def test_two_trainings_building_one_cache_at_once_both_succeed(data_root, tmp_path):
    """train_demos.sh runs two trainings side by side; each builds the cache into a file of its own and
    replaces atomically (a shared .part file made the second replace fail with FileNotFoundError)."""
    from concurrent.futures import ThreadPoolExecutor

    spec = ClipSpec(4, 28, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    source = SSv2Dataset(data_root, "validation", spec, train=False)
    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(lambda _: build_frame_cache(source, 32, 64, tmp_path, progress=False), range(2)))
    assert paths[0] == paths[1] and not list(tmp_path.glob("*.part"))
    cached = CachedClips(source, paths[0], num_frames=4, input_size=28, train=False)
    assert torch.equal(cached[5][0], source[5][0])


def test_cached_test_clips_equal_the_real_reader(data_root, tmp_path):
    spec = ClipSpec(4, 28, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    source = SSv2Dataset(data_root, "validation", spec, train=False)
    cache = build_frame_cache(source, 32, 64, tmp_path, progress=False)
    cached = CachedClips(source, cache, num_frames=4, input_size=28, train=False)
    for i in (0, 7, 14):
        assert torch.equal(cached[i][0], source[i][0])
        assert cached[i][1] == source[i][1]
    # Training items: random but repeatable per (seed, index, epoch), and new each epoch.
    train_items = CachedClips(source, cache, num_frames=4, input_size=28, train=True, seed=1)
    first = train_items[3][0]
    assert torch.equal(first, train_items[3][0])
    train_items.set_epoch(1)
    assert not torch.equal(first, train_items[3][0])


def test_cache_of_videos_longer_than_max_frames_still_equals_the_real_reader(data_root, tmp_path):
    """8-frame videos cached at max_frames=5 for 3-frame clips: the kept rows are the 5-segment grid
    [0, 2, 4, 5, 7] plus the test frames [1, 4, 6]; a test item is read_clip's, not TSN of TSN
    (the old cache gave frames [0, 4, 7])."""
    spec = ClipSpec(3, 28, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    source = SSv2Dataset(data_root, "validation", spec, train=False)
    cache = build_frame_cache(source, 32, 5, tmp_path, progress=False)
    meta = json.loads(cache.with_suffix(".json").read_text())
    assert meta["counts"][0] == 8 and meta["kept"][0] == [0, 1, 2, 4, 5, 6, 7]
    assert cache.stat().st_size == meta["rows"] * 32 * 32 * 3 == 15 * 7 * 32 * 32 * 3
    cached = CachedClips(source, cache, num_frames=3, input_size=28, train=False)
    for i in (0, 9):
        assert torch.equal(cached[i][0], source[i][0])
    with pytest.raises(ValueError, match="test frames of 3-frame clips, not 4"):
        CachedClips(source, cache, num_frames=4, input_size=28, train=False)


def test_cached_training_frames_of_a_long_video_are_its_own(data_root, tmp_path):
    """max_frames=3, T=2 keeps frames [1, 2, 4, 6] of an 8-frame video; a training draw of frame 0
    takes frame 1 (the first kept), never a row of the video before it."""
    spec = ClipSpec(2, 32, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    source = SSv2Dataset(data_root, "validation", spec, train=False)
    cache = build_frame_cache(source, 32, 3, tmp_path, progress=False)
    items = CachedClips(source, cache, num_frames=2, input_size=32, train=True, seed=0)    # crop = whole square
    assert json.loads(cache.with_suffix(".json").read_text())["kept"][3] == [1, 2, 4, 6]
    own = normalise(np.array(items.frames[items.offsets[3]:items.offsets[3] + 4]), spec.mean, spec.std)   # (3, 4, S, S)
    firsts = set()
    for epoch in range(12):
        items.set_epoch(epoch)
        clip = items[3][0]
        rows = [next(r for r in range(4) if torch.equal(clip[:, t], own[:, r])) for t in range(2)]
        firsts.add(rows[0])
        assert rows[0] in (0, 1) and rows[1] in (2, 3)      # segment 0: frames 0-3, segment 1: frames 4-7
    assert firsts == {0, 1}


def test_training_writes_checkpoint_and_metrics_and_resumes_exactly(data_root, tmp_path):
    straight = tmp_path / "straight"
    final = train(tiny_config(data_root, straight))
    lines = [json.loads(l) for l in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2] and lines[-1]["step"] == 6     # 15 clips / 5 per batch
    assert all(0 <= l["val_top1"] <= 1 and "val_reversed_top1" in l for l in lines)
    ckpt = load_checkpoint(straight)
    config = ckpt.config
    assert config.model_name == "demo_r2d18_gta" and config.num_frames == 4 and config.input_size == 28
    assert config.dataset["seed"] == 3 and config.dataset["variant"] == "temporal"
    assert "synth" in config.dataset["generator_command"] or "generate(" in config.dataset["generator_command"]
    assert config.provenance["device"] == "cpu" and config.provenance["git_commit"]
    assert config.provenance["epochs_done"] == 2 and config.metrics["val_top1"] == final["val_top1"]
    assert set(config.metrics) >= {"val_top1", "val_top5", "val_reversed_top1"}
    assert not (straight / "resume").exists()      # a finished run leaves only the checkpoint

    # Interrupted after epoch 1 (the same 2-epoch schedule), then resumed.
    cut = tmp_path / "cut"
    train(tiny_config(data_root, cut, max_steps=3))
    assert (cut / "resume" / "state.json").is_file()
    assert load_checkpoint(cut).config.provenance["stopped_at_max_steps"] is True
    train(tiny_config(data_root, cut, resume=True))
    a, b = load_file(straight / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed run must end with the same weights"
    cut_lines = [json.loads(l) for l in (cut / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in cut_lines] == [1, 2]
    assert cut_lines[1]["train_loss"] == lines[1]["train_loss"]


def test_torchrun_two_processes_train_on_different_clips_and_save_a_loadable_checkpoint(data_root, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "gta_core", "train", "--model", "demo_r2d18_gta", "--data", str(data_root), "--out", str(out),
        "--set", "width_multiplier=0.125", "--frames", "4", "--set", "gta_groups=2",
        "--input-size", "28", "--resize-shorter", "32", "--batch-size", "3", "--epochs", "1",
        "--max-steps", "2", "--workers", "0", "--device", "cpu", "--log-sample-ids", "--no-progress",
    ]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1, "rank 0 alone writes the metrics"
    line = lines[0]
    assert line["step"] == 2 and line["train_clips"] == 2 * 2 * 3     # 2 steps × 2 ranks × 3 clips
    rank0, rank1 = line["sample_ids_by_rank"]
    assert len(rank0) == len(rank1) == 6
    assert not set(rank0) & set(rank1), "DistributedSampler must give each rank different clips"
    ckpt = load_checkpoint(out)
    assert ckpt.config.provenance["world_size"] == 2
    assert ckpt.config.provenance["command"].startswith("torchrun --nproc_per_node 2 -m gta_core train")
    assert not any(k.startswith("module.") for k in ckpt.model.state_dict())
    with torch.inference_mode():
        assert ckpt.model(torch.zeros(1, 3, 4, 28, 28)).shape == (1, 15)


def test_init_from_copies_the_2d_backbone_only(tmp_path):
    from gta_core import CheckpointConfig, create_model, save_checkpoint
    from gta_core.train import load_backbone

    torch.manual_seed(1)
    source = create_model("demo_r2d18_gta", num_classes=8, **TINY)
    save_checkpoint(tmp_path / "src", source, CheckpointConfig(
        architecture=source.config.to_dict(), class_names=[str(i) for i in range(8)], model_name="demo_r2d18_gta",
        input_size=28, resize_shorter=32))
    torch.manual_seed(2)
    target = create_model("demo_r2d18_nl", num_classes=15, **TINY)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    record = load_backbone(target, tmp_path / "src")
    state, src_state = target.state_dict(), source.state_dict()
    for key, value in state.items():
        if key.startswith("backbone.") and ".attention." not in key:
            assert torch.equal(value, src_state[key]), key
        else:   # the NL blocks and the 15-class head keep their own initialisation
            assert torch.equal(value, fresh[key]), key
    assert record["model_name"] == "demo_r2d18_gta" and record["tensors"] > 0
    with pytest.raises(ValueError, match="backbone does not match"):
        load_backbone(create_model("demo_r2d18", num_classes=15, width_multiplier=0.25), tmp_path / "src")


def test_init_imagenet_from_safetensors_in_torchvision_layout(data_root, tmp_path):
    """A torchvision-layout ResNet-18 (as safetensors) starts the backbone; its fc is dropped and reported."""
    import re

    from safetensors.torch import save_file

    from gta_core import create_model

    torch.manual_seed(5)
    donor = create_model("demo_r2d18", num_classes=15, **TINY).state_dict()
    torchvision_names = {}
    for key, value in donor.items():
        if not key.startswith("backbone."):
            continue
        key = key.removeprefix("backbone.").replace("stem.0.", "conv1.").replace("stem.1.", "bn1.")
        key = re.sub(r"res(\d)\.(\d+)\.residual\.", lambda m: f"layer{int(m[1]) - 1}.{m[2]}.", key)
        torchvision_names[key] = value
    torchvision_names |= {"fc.weight": torch.zeros(1000, donor["head.weight"].shape[1]), "fc.bias": torch.zeros(1000)}
    save_file(torchvision_names, str(tmp_path / "resnet18.safetensors"))
    out = tmp_path / "run"
    train(tiny_config(data_root, out, init_imagenet=str(tmp_path / "resnet18.safetensors"), epochs=1, max_steps=1))
    record = json.loads((out / "config.json").read_text())["provenance"]["init_from"]
    assert record["dropped"] == ["fc.bias", "fc.weight"]
    assert record["loaded"] == len(torchvision_names) - 2
    assert all(".attention." in k or k.startswith("head.") for k in record["kept_at_init"])
