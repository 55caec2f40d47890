"""Training: `python -m gta_core train`, one process or under torchrun.

    python -m gta_core train --model demo_r2d18_gta --data DATA --out checkpoints/NAME \
        [--config train.json] [--epochs 30] [--optimizer adamw|sgd] [--schedule cosine|step] ...
    torchrun --nproc_per_node 2 -m gta_core train ...        (DDP: gloo on CPU, NCCL on GPU)

What it does, in order:

* Data: an SSv2-layout folder (`gta_core.data.ssv2.SSv2Dataset`). Training clips
  take a random frame in each TSN segment; validation clips the centre one.
  `--cache-frames` decodes every video of a split once into a uint8 array
  (`DATA/.frame_cache/`, memory-mapped) at the resize side, square, and draws
  the TSN offsets and a random crop from it, so an epoch costs no decoding.
  Validation through the cache gives the same pixels as `read_clip` (centre
  frames, centre crop of the same resize).
* Optimiser: SGD (momentum, nesterov off) or AdamW; a linear warm-up over
  `--warmup-epochs`, then cosine to zero or steps (×`--gamma` at each of
  `--milestones`, in epochs). The learning rate is a pure function of the step,
  so a resumed run follows the same schedule.
* Mixed precision (float16 autocast + GradScaler) on CUDA when `--amp auto|on`.
* Under torchrun: DistributedDataParallel, a DistributedSampler (each rank a
  different shard, reshuffled per epoch), and rank 0 alone writes files.
  BatchNorm statistics are per rank, rank 0's buffers broadcast each step
  (DDP's default); `--sync-bn` converts to SyncBatchNorm.
* Files, written after every epoch by rank 0 into OUT:
    config.json + model.safetensors    the checkpoint (our format), last epoch
    metrics.jsonl                      one JSON line per epoch
    resume/optimizer.safetensors,      optimiser state and the loop position
    resume/state.json                  (no pickle), deleted when the run ends
  OUT must not hold a checkpoint already unless `--resume` or `--force` is given.
  `--resume` continues from OUT/resume after an interruption. Randomness is
  re-seeded from (seed, epoch, rank) at every epoch, so a resumed run sees the
  same clips, crops and dropout masks as one that was not interrupted.
* At the end the final model is evaluated on the validation split with the
  real video path (`gta_core.evaluate.evaluate_model`, what `evaluate` runs)
  and the metrics, the dataset's seed and generator command, the exact command
  line, git commit, device and wall time go into config.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointConfig, save_checkpoint
from .distributed import DeviceError, DistEnv, all_gather_objects, barrier, init_distributed, shutdown
from .evaluate import evaluate_model, reversed_targets, summary_line
from .importers import load_imagenet_backbone
from .models import create_model, list_models, model_config

METRICS_FILE = "metrics.jsonl"
RESUME_DIR = "resume"
CACHE_DIR = ".frame_cache"
# Classes whose meaning a horizontal flip changes (the paper's appendix E: no
# flip for "left"/"right" labels; turning clockwise mirrors to counter-clockwise).
NO_FLIP_WORDS = ("left", "right", "clockwise")


@dataclass
class TrainConfig:
    model: str = "demo_r2d18_gta"
    data: str = ""
    out: str = ""
    # Model settings on top of the registry's (any VideoNetConfig field).
    model_overrides: dict = field(default_factory=dict)
    # Input pipeline (written to the checkpoint; what evaluate/predict/the app read).
    input_size: int = 112
    resize_shorter: int = 128
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    hflip: bool = False            # random horizontal flip, not for NO_FLIP_WORDS classes
    # Play a training clip backwards with this probability and give it the label of its
    # time-reversal pair (DATA/reverse_pairs.json). The frames of a pair's two classes
    # are then the same, so only temporal order can tell them apart: an order-invariant
    # model cannot fit them, and no model can separate them by memorising backgrounds.
    reverse_aug: float = 0.0
    cache_frames: bool = False
    cache_max_frames: int = 64     # videos longer than this are cached at this many frames
    # Start the 2D backbone from another checkpoint (the paper starts from ImageNet
    # weights, appendix E); its temporal blocks and classifier are not copied.
    init_from: str = ""
    # Or from an ImageNet ResNet in torchvision's layout (conv1, bn1, layer1.0.conv1, ..., fc),
    # as .safetensors or a .pth read by the importers' safe reader; fc is dropped.
    init_imagenet: str = ""
    # Optimisation.
    epochs: int = 30
    batch_size: int = 16           # per process
    optimizer: str = "adamw"       # adamw | sgd
    lr: float = 1e-3               # for the global batch (batch_size × processes)
    weight_decay: float = 0.05
    momentum: float = 0.9
    schedule: str = "cosine"       # cosine | step
    warmup_epochs: float = 1.0
    milestones: tuple[int, ...] = (30, 40, 45)   # step schedule, epochs (paper appendix E)
    gamma: float = 0.1
    # GTA's global matrices M̂ (pixel_matrix / region_matrix) get their own parameter group:
    # lr × matrix_lr_mult and this decoupled weight decay. With 1.0 / 0.0 (before issue 15)
    # M̂ ended 15 demo epochs at corr 0.89 with its random init; see make_optimizer.
    matrix_lr_mult: float = 10.0
    matrix_weight_decay: float = 0.05
    label_smoothing: float = 0.0
    grad_clip: float = 0.0         # max grad norm; 0 = off
    amp: str = "auto"              # auto (on for CUDA) | on | off
    sync_bn: bool = False
    # Running.
    device: str = "auto"
    threads: int = 0               # CPU threads per process; 0: see distributed.init_distributed
    workers: int = -1              # DataLoader workers; -1: 0 with the cache, else 2
    seed: int = 0
    eval_every: int = 1            # validate every N epochs (and always after the last)
    eval_batch_size: int = 16
    max_steps: int = 0             # stop after this many optimiser steps (tests, smoke runs)
    resume: bool = False
    force: bool = False            # overwrite a checkpoint already in `out`
    log_sample_ids: bool = False   # record which dataset items each rank trained on
    progress: bool = True
    decoder: str = "auto"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- data


def _crop_normalise(frames: np.ndarray, crop: int, top: int, left: int, mean, std) -> torch.Tensor:
    from .video import normalise

    return normalise(frames[:, top:top + crop, left:left + crop], mean, std)   # (T, S, S, 3) -> (3, T, s, s)


class CachedClips(Dataset):
    """An SSv2Dataset's videos decoded once: frames (N, F, S, S, 3) uint8 on disk, memory-mapped.

    Each video is read with `read_clip` at resize_shorter = input side = S (the
    centre square of the resized frames) and all its frames (up to F_max, spread
    TSN-style when longer). Items: training takes a random frame per TSN segment
    and a random crop, from default_rng([seed, index, epoch]); testing takes the
    centre frame per segment and the centre crop, which equals read_clip's
    test-mode output for the same config.
    """

    def __init__(self, source, cache_file: Path, num_frames: int, input_size: int, train: bool, seed: int = 0):
        meta = json.loads(cache_file.with_suffix(".json").read_text())
        self.frames = np.load(cache_file, mmap_mode="r")          # (N, F, S, S, 3)
        self.counts = np.asarray(meta["counts"])
        self.samples = source.samples
        self.class_names = source.class_names
        self.num_frames, self.input_size, self.train, self.seed = num_frames, input_size, train, seed
        self.mean, self.std = source.spec.mean, source.spec.std
        self.epoch = 0
        if [s[2] for s in self.samples] != meta["ids"]:
            raise ValueError(f"{cache_file} was built for other videos; delete it to rebuild")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from .video import temporal_sample_indices

        side = self.frames.shape[2]
        crop = self.input_size
        if self.train:
            rng = np.random.default_rng([self.seed, i, self.epoch])
            idx = temporal_sample_indices(int(self.counts[i]), self.num_frames, True, rng)
            top, left = (int(v) for v in rng.integers(0, side - crop + 1, size=2))
        else:
            idx = temporal_sample_indices(int(self.counts[i]), self.num_frames, False)
            top = left = (side - crop) // 2
        frames = np.asarray(self.frames[i, idx])
        return _crop_normalise(frames, crop, top, left, self.mean, self.std), self.samples[i][1]


def build_frame_cache(source, side: int, max_frames: int, cache_dir: Path, progress: bool = True) -> Path:
    """Decode every video of `source` (an SSv2Dataset) once; return the .npy path (reused if built)."""
    from .video import ClipSpec, read_clip

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{source.split}_{side}px_max{max_frames}f.npy"
    meta_path = path.with_suffix(".json")
    ids = [s[2] for s in source.samples]
    if path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()).get("ids") == ids:
        return path
    clips, counts = [], []
    items = source.samples
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"caching {source.split} frames", mininterval=5)
    for video_path, _, _ in items:
        spec = ClipSpec(max_frames, side, side, source.spec.mean, source.spec.std)
        clip = read_clip(video_path, spec, train=False, decoder=source.decoder, limits=source.limits)
        count = clip.num_decoded_frames
        if count < max_frames:
            # TSN centres of `max_frames` segments over count <= max_frames frames hit every
            # frame at least once: keep the first copy of each, in order (no repeats).
            first = {index: k for k, index in reversed(list(enumerate(clip.frame_indices)))}
            clips.append(clip.frames_uint8[[first[i] for i in range(count)]])
        else:
            clips.append(clip.frames_uint8)
        counts.append(min(count, max_frames))
    frames = np.lib.format.open_memmap(
        path.with_suffix(".tmp.npy"), mode="w+", dtype=np.uint8,
        shape=(len(clips), max(counts), side, side, 3),
    )
    for k, clip in enumerate(clips):
        frames[k, :len(clip)] = clip
    frames.flush()
    del frames
    path.with_suffix(".tmp.npy").replace(path)
    meta_path.write_text(json.dumps({"ids": ids, "counts": counts, "side": side}))
    return path


def flip_allowed(class_names: list[str]) -> torch.Tensor:
    return torch.tensor([not any(w in n.lower() for w in NO_FLIP_WORDS) for n in class_names])


# ---------------------------------------------------------------- schedule and optimiser


def lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at optimiser step `step` (0-based)."""
    total = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if cfg.schedule == "step":
        epoch = step / steps_per_epoch
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    raise ValueError(f"schedule must be cosine or step, got {cfg.schedule!r}")


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Three groups: weights (decayed), BatchNorm and biases (not), GTA's M̂ (their own lr and decay).

    Each group's lr is cfg.lr × its "lr_mult" × the schedule (see the training loop).

    Why M̂ has its own group (issue 15; measured with bench/probe_matrices.py on the
    temporal demo set, seed 0). With the shared lr and no decay, M̂ barely left its
    random init: the shipped demo GTAs ended at ‖M̂ − M̂₀‖/‖M̂₀‖ = 0.42-0.67 and
    corr(M̂, M̂₀) = 0.82-0.92, so two checkpoints from one seed showed the same draw.
    The block is closed by a zero-init BatchNorm, so M̂'s gradient relative to its
    size is 10²-10⁴× smaller than the other weights' (‖∇M̂‖/‖M̂‖ ≈ 4e-5 to 2e-3 vs 0.1-0.6),
    and the BatchNorm plus the head-wise scale symmetry with W^O leave M̂'s scale
    free: nothing pulls the random draw out. AdamW evens out the gradient scale but
    moves each entry by ~lr per step against entries of size 1/√(T·G) ≈ 0.18.
    The choice: lr × 10 for M̂, and decoupled weight decay on it (0.05, as the
    other weights), which shrinks the part of M̂₀ that no gradient touches (its
    scale is free, so decay costs the model nothing). In the probe's first 400
    steps corr(M̂, M̂₀) fell to 0.27 (×10, decay 0.05) and 0.11 (×20, decay 0.1),
    where the old group had moved M̂ by 0.27 of its norm after 150 steps, with the
    training loss falling as fast or faster.
    The paper's random init N(0, 1/(T·G)) is kept.
    """
    decay, no_decay, matrices = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.rsplit(".", 1)[-1] in ("pixel_matrix", "region_matrix"):
            matrices.append(p)
        else:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "lr_mult": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0}]
    if matrices:
        groups.append({"params": matrices, "weight_decay": cfg.matrix_weight_decay, "lr_mult": cfg.matrix_lr_mult})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"optimizer must be sgd or adamw, got {cfg.optimizer!r}")


# ---------------------------------------------------------------- resume state (safetensors + JSON, no pickle)


def save_resume_state(folder: Path, optimizer, scaler, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, values in sd["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    save_file(tensors or {"_empty": torch.zeros(0)}, str(folder / "optimizer.safetensors.tmp"))
    payload = {**state, "param_groups": sd["param_groups"], "scalars": scalars,
               "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None}
    (folder / "state.json.tmp").write_text(json.dumps(payload, indent=1))
    (folder / "optimizer.safetensors.tmp").replace(folder / "optimizer.safetensors")
    (folder / "state.json.tmp").replace(folder / "state.json")


def load_resume_state(folder: Path, optimizer, scaler) -> dict:
    payload = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key == "_empty":
            continue
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in payload.pop("scalars").items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": payload.pop("param_groups")})
    scaler_state = payload.pop("scaler")
    if scaler_state and scaler is not None:
        scaler.load_state_dict(scaler_state)
    return payload


def load_backbone(model: nn.Module, folder: str | Path) -> dict:
    """Copy a checkpoint's 2D backbone weights (not its temporal blocks, not its head) into `model`."""
    from .checkpoint import load_checkpoint

    source = load_checkpoint(folder)
    def backbone(state: dict) -> dict:
        return {k: v for k, v in state.items() if k.startswith("backbone.") and ".attention." not in k}
    mine, theirs = backbone(model.state_dict()), backbone(source.model.state_dict())
    if mine.keys() != theirs.keys() or any(mine[k].shape != theirs[k].shape for k in mine):
        raise ValueError(f"{folder}: its backbone does not match {getattr(model, 'config', None)}")
    model.load_state_dict(theirs, strict=False)
    return {"checkpoint": str(folder), "model_name": source.config.model_name,
            "dataset": source.config.dataset, "tensors": len(theirs)}


# ---------------------------------------------------------------- provenance


def git_state() -> dict:
    """HEAD's commit and the tracked files under gta_core/ that differ from it (other people's edits too)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        changed = subprocess.run(["git", "diff", "--name-only", "HEAD", "--", "gta_core"], cwd=root,
                                 capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_changed_files": []}
    return {"git_commit": commit or "unknown", "git_changed_files": changed}


def command_line(env: DistEnv, argv: list[str] | None) -> str:
    args = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    if env.enabled:
        return f"torchrun --nproc_per_node {env.world_size} -m gta_core {args}"
    return f"python -m gta_core {args}"


def dataset_record(root: Path, train_set, val_set) -> dict:
    info_path = root / "dataset_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return {
        "name": "synthetic (SSv2 layout)" if info.get("generator") else "SSv2 layout",
        "root": str(root),
        "variant": info.get("variant"),
        "seed": info.get("seed"),
        "generator_command": info.get("command_line"),
        "generator_version": info.get("generator_version"),
        "num_train": len(train_set),
        "num_validation": len(val_set),
        "num_classes": len(train_set.class_names),
        "has_reverse_pairs": (root / "reverse_pairs.json").is_file(),
    }


# ---------------------------------------------------------------- the loop


class _EpochSampler(Sampler):
    """One-process shuffling that depends only on (seed, epoch), like DistributedSampler's."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _seed_epoch(cfg: TrainConfig, epoch: int, rank: int) -> None:
    torch.manual_seed(int(np.random.SeedSequence([cfg.seed, epoch, rank]).generate_state(1)[0]))


class SetupError(ValueError):
    """A run that cannot start: its data folder, model name or output folder is wrong."""


def check_setup(cfg: TrainConfig) -> None:
    """Refuse before any work: a missing data folder, an unknown model, or a checkpoint in
    `out` that the run would overwrite without --resume or --force."""
    if not Path(cfg.data).is_dir():
        raise SetupError(f"--data {cfg.data}: not a folder")
    if cfg.model not in list_models():
        raise SetupError(f"unknown model {cfg.model!r} (python -m gta_core models lists them)")
    out = Path(cfg.out)
    if not (cfg.resume or cfg.force) and ((out / WEIGHTS_NAME).exists() or (out / CONFIG_NAME).exists()):
        raise SetupError(f"--out {out} already holds a checkpoint; give --resume to continue its run "
                         "or --force to overwrite it")


def train(cfg: TrainConfig, argv: list[str] | None = None) -> dict:
    """Run training as `cfg` says; returns the final metrics (on every rank)."""
    from .data.ssv2 import SSv2Dataset
    from .video import ClipSpec

    check_setup(cfg)
    env = init_distributed(cfg.device, cfg.threads)
    started = time.time()
    out, data = Path(cfg.out), Path(cfg.data)
    try:
        arch = model_config(cfg.model, **cfg.model_overrides)
        spec = ClipSpec(arch.num_frames, cfg.input_size, cfg.resize_shorter, tuple(cfg.mean), tuple(cfg.std))
        train_src = SSv2Dataset(data, "train", spec, train=True, seed=cfg.seed, decoder=cfg.decoder)
        val_src = SSv2Dataset(data, "validation", spec, train=False, decoder=cfg.decoder)
        class_names = train_src.class_names
        if cfg.cache_frames:
            cache_dir = data / CACHE_DIR
            if env.is_main:
                for src in (train_src, val_src):
                    build_frame_cache(src, cfg.resize_shorter, cfg.cache_max_frames, cache_dir, cfg.progress)
            barrier(env)
            train_set = CachedClips(
                train_src, build_frame_cache(train_src, cfg.resize_shorter, cfg.cache_max_frames, cache_dir, False),
                arch.num_frames, cfg.input_size, train=True, seed=cfg.seed)
            val_set = CachedClips(
                val_src, build_frame_cache(val_src, cfg.resize_shorter, cfg.cache_max_frames, cache_dir, False),
                arch.num_frames, cfg.input_size, train=False)
        else:
            train_set, val_set = train_src, val_src

        torch.manual_seed(cfg.seed)   # the same initial weights on every rank (DDP also broadcasts rank 0's)
        model = create_model(cfg.model, **{**cfg.model_overrides, "num_classes": len(class_names)})
        init_record = load_backbone(model, cfg.init_from) if cfg.init_from else None
        if cfg.init_imagenet:
            if cfg.init_from:
                raise ValueError("--init-from and --init-imagenet both set the backbone; give one")
            init_record = load_imagenet_backbone(model, cfg.init_imagenet)
            if env.is_main:
                print(f"ImageNet init from {init_record['source']}: {init_record['loaded']} tensors loaded, "
                      f"dropped {', '.join(init_record['dropped']) or 'nothing'}, "
                      f"{len(init_record['kept_at_init'])} left at init (temporal blocks, head)")
        if cfg.sync_bn and env.enabled:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(env.device)
        raw_model = model
        if env.enabled:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        optimizer = make_optimizer(cfg, raw_model)
        use_amp = env.device.type == "cuda" and cfg.amp != "off"
        if cfg.amp == "on" and env.device.type != "cuda":
            raise ValueError("--amp on needs CUDA (mixed precision is float16 autocast on the GPU)")
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

        if env.enabled:
            sampler = DistributedSampler(train_set, env.world_size, env.rank, shuffle=True, seed=cfg.seed,
                                         drop_last=True)
        else:
            sampler = _EpochSampler(len(train_set), cfg.seed)
        workers = cfg.workers if cfg.workers >= 0 else (0 if cfg.cache_frames else 2)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                            drop_last=True, pin_memory=env.device.type == "cuda")
        steps_per_epoch = len(loader)
        if steps_per_epoch == 0:
            raise ValueError(f"{len(train_set)} training clips make no full batch of {cfg.batch_size} per process")
        flippable = flip_allowed(class_names)
        reverse_table = None
        if cfg.reverse_aug > 0:
            table = reversed_targets(data, class_names, np.arange(len(class_names)))
            if table is None:
                raise ValueError(f"--reverse-aug needs {data}/reverse_pairs.json (classes in time-reversal pairs)")
            reverse_table = torch.as_tensor(table, device=env.device)

        start_epoch, step, train_seconds = 0, 0, 0.0
        resume_dir = out / RESUME_DIR
        if cfg.resume and (resume_dir / "state.json").is_file():
            from .checkpoint import load_checkpoint

            raw_model.load_state_dict(load_checkpoint(out).model.state_dict())
            state = load_resume_state(resume_dir, optimizer, scaler)
            if state["model"] != cfg.model or state["world_size"] != env.world_size:
                raise ValueError(f"{resume_dir} is from {state['model']} on {state['world_size']} processes; "
                                 f"this run is {cfg.model} on {env.world_size}")
            start_epoch, step, train_seconds = state["epoch"] + 1, state["step"], state["train_seconds"]
            if env.is_main:
                print(f"resuming after epoch {state['epoch'] + 1} (step {step})", file=sys.stderr)

        record = {
            "dataset": dataset_record(data, train_set, val_set),
            "command": command_line(env, argv),
            **git_state(),
            "device": str(env.device.type) if env.device.type == "cpu" else torch.cuda.get_device_name(env.device),
            "world_size": env.world_size,
            "torch": torch.__version__,
            "seed": cfg.seed,   # also in train_config; top level so a reader (M̂₀ reconstruction) finds it
            "train_config": cfg.to_dict(),
            "init_from": init_record,
        }

        def checkpoint_config(metrics: dict, extra: dict) -> CheckpointConfig:
            return CheckpointConfig(
                architecture=raw_model.config.to_dict(), class_names=list(class_names), model_name=cfg.model,
                input_size=cfg.input_size, resize_shorter=cfg.resize_shorter,
                mean=list(cfg.mean), std=list(cfg.std), sampling="tsn", dataset=record["dataset"],
                provenance={k: v for k, v in record.items() if k != "dataset"} | extra, metrics=metrics,
            )

        val_metrics: dict = {}
        stopped = False
        for epoch in range(start_epoch, cfg.epochs):
            epoch_start = time.time()
            _seed_epoch(cfg, epoch, env.rank)
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            model.train()
            loss_sum = correct = seen = 0.0
            batches = loader
            bar = None
            if env.is_main and cfg.progress:
                from tqdm import tqdm

                bar = batches = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                                     mininterval=1 if sys.stderr.isatty() else 30)
            steps_this_epoch = 0
            for clips, labels in batches:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * group["lr_mult"] * lr_factor(cfg, step, steps_per_epoch)
                clips, labels = clips.to(env.device, non_blocking=True), labels.to(env.device, non_blocking=True)
                if cfg.hflip:
                    flip = (torch.rand(len(labels), device=env.device) < 0.5) & flippable.to(env.device)[labels]
                    clips = torch.where(flip[:, None, None, None, None], clips.flip(dims=(4,)), clips)
                if reverse_table is not None:
                    back = torch.rand(len(labels), device=env.device) < cfg.reverse_aug
                    clips = torch.where(back[:, None, None, None, None], clips.flip(dims=(2,)), clips)  # T reversed
                    labels = torch.where(back, reverse_table[labels], labels)
                with torch.autocast(env.device.type, dtype=torch.float16, enabled=use_amp):
                    logits = model(clips)
                    loss = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                steps_this_epoch += 1
                loss_sum += loss.item() * len(labels)
                correct += (logits.argmax(1) == labels).sum().item()
                seen += len(labels)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
                if cfg.max_steps and step >= cfg.max_steps:
                    stopped = True
                    break
            if bar is not None:
                bar.close()
            train_seconds += time.time() - epoch_start
            totals = np.array(all_gather_objects(env, (loss_sum, correct, seen)), dtype=np.float64).sum(axis=0)
            last = epoch == cfg.epochs - 1 or stopped
            line = {
                "epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                "train_loss": totals[0] / max(1, totals[2]), "train_top1": totals[1] / max(1, totals[2]),
                "train_clips": int(totals[2]), "epoch_seconds": round(time.time() - epoch_start, 2),
            }
            if last or (epoch + 1) % cfg.eval_every == 0:
                val_metrics = evaluate_model(raw_model, val_set, class_names, data, env,
                                             batch_size=cfg.eval_batch_size)
                line |= {f"val_{k}": val_metrics[k] for k in ("top1", "top5", "loss", "reversed_top1")
                         if k in val_metrics}
            if cfg.log_sample_ids:  # the video ids of the clips this rank trained on, in order
                ids_seen = [train_set.samples[i][2] for i in list(iter(sampler))[: steps_this_epoch * cfg.batch_size]]
                line["sample_ids_by_rank"] = all_gather_objects(env, ids_seen)
            if env.is_main:
                out.mkdir(parents=True, exist_ok=True)
                with (out / METRICS_FILE).open("a") as handle:
                    handle.write(json.dumps(line) + "\n")
                save_checkpoint(out, raw_model, checkpoint_config(
                    {}, {"epochs_done": epoch + 1, "train_seconds": round(train_seconds, 1)}))
                save_resume_state(resume_dir, optimizer, scaler, {
                    "epoch": epoch, "step": step, "train_seconds": train_seconds,
                    "model": cfg.model, "world_size": env.world_size,
                })
                msg = f"epoch {epoch + 1}/{cfg.epochs}: train loss {line['train_loss']:.4f} top-1 {line['train_top1']:.3f}"
                if "val_top1" in line:
                    msg += f" | val top-1 {line['val_top1']:.3f}"
                    if "val_reversed_top1" in line:
                        msg += f" reversed {line['val_reversed_top1']:.3f}"
                print(msg + f" | {line['epoch_seconds']} s", file=sys.stderr, flush=True)
            barrier(env)
            if stopped:
                break

        # Final numbers through the real video path (what `evaluate` runs); without the
        # cache the last epoch's validation already went that way.
        if cfg.cache_frames or not val_metrics:
            val_metrics = evaluate_model(raw_model, val_src, class_names, data, env, batch_size=cfg.eval_batch_size)
        epochs_done = start_epoch if start_epoch >= cfg.epochs else epoch + 1
        final = {
            "val_top1": val_metrics.get("top1"), "val_top5": val_metrics.get("top5"),
            "val_loss": val_metrics.get("loss"), "val_reversed_top1": val_metrics.get("reversed_top1"),
            "val_both_directions_top1": val_metrics.get("both_directions_top1"),
            "val_per_class_accuracy": val_metrics.get("per_class_accuracy"),
            "num_val_clips": val_metrics.get("num_clips"),
        }
        wall = time.time() - started
        if env.is_main:
            save_checkpoint(out, raw_model, checkpoint_config(final, {
                "epochs_done": epochs_done, "steps": step, "train_seconds": round(train_seconds, 1),
                "wall_seconds": round(wall, 1), "stopped_at_max_steps": stopped,
            }))
            if not stopped:  # the run is complete; one cut short by --max-steps can go on with --resume
                for name in ("optimizer.safetensors", "state.json"):
                    (resume_dir / name).unlink(missing_ok=True)
                if resume_dir.is_dir() and not any(resume_dir.iterdir()):
                    resume_dir.rmdir()
            print(f"done: {summary_line(val_metrics)}; {out}", file=sys.stderr)
        barrier(env)
        return final
    finally:
        shutdown(env)


# ---------------------------------------------------------------- CLI


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults < --config FILE < flags given on the command line."""
    values: dict = {}
    if args.config:
        values = json.loads(Path(args.config).read_text())
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown:
            raise SystemExit(f"error: {args.config}: unknown keys {unknown}")
    for f in dataclasses.fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    overrides = dict(values.get("model_overrides", {}))
    for name, key in (("width_multiplier", "width_multiplier"), ("dropout", "dropout"), ("frames", "num_frames")):
        if getattr(args, name) is not None:
            overrides[key] = getattr(args, name)
    overrides.update(dict(args.set or []))
    values["model_overrides"] = overrides
    for key in ("mean", "std", "milestones"):
        if key in values:
            values[key] = tuple(values[key])
    cfg = TrainConfig(**values)
    if not cfg.data or not cfg.out:
        raise SystemExit("error: --data and --out are required (flags or the config file)")
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    try:
        train(build_config(args))
    except (SetupError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a model on an SSv2-layout dataset (one process or torchrun)",
        description=__doc__.split("\n\n")[0],
    )
    # Every flag defaults to None so that a --config file's value survives unless the flag is given.
    p.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    p.add_argument("--model", help="registry name (default demo_r2d18_gta)")
    p.add_argument("--data", help="dataset folder in the SSv2 layout")
    p.add_argument("--out", help="checkpoint folder to write")
    p.add_argument("--width-multiplier", type=float)
    p.add_argument("--dropout", type=float)
    p.add_argument("--frames", type=int, help="clip length T (num_frames)")
    p.add_argument("--set", action="append", type=_parse_override, metavar="KEY=VALUE",
                   help="any other model setting, e.g. --set gta_groups=8")
    p.add_argument("--input-size", type=int)
    p.add_argument("--resize-shorter", type=int)
    p.add_argument("--hflip", action="store_true", default=None)
    p.add_argument("--reverse-aug", type=float,
                   help="probability of training on a clip played backwards with its reverse-pair label")
    p.add_argument("--cache-frames", action="store_true", default=None,
                   help="decode each split once into DATA/.frame_cache and train from it")
    p.add_argument("--init-from", help="checkpoint whose 2D backbone weights start this model")
    p.add_argument("--init-imagenet", help="ImageNet ResNet-18/34/50 in torchvision layout (.safetensors or .pth)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per process")
    p.add_argument("--optimizer", choices=("adamw", "sgd"))
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--schedule", choices=("cosine", "step"))
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--milestones", type=int, nargs="+")
    p.add_argument("--gamma", type=float)
    p.add_argument("--matrix-lr-mult", type=float, help="lr multiplier of GTA's global matrices M̂")
    p.add_argument("--matrix-weight-decay", type=float, help="weight decay of GTA's global matrices M̂")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--grad-clip", type=float)
    p.add_argument("--amp", choices=("auto", "on", "off"))
    p.add_argument("--sync-bn", action="store_true", default=None)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, help="CPU threads per process (0: automatic; 1 on a busy machine)")
    p.add_argument("--workers", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--eval-every", type=int)
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--resume", action="store_true", default=None, help="continue from OUT/resume")
    p.add_argument("--force", action="store_true", default=None, help="overwrite a checkpoint already in OUT")
    p.add_argument("--log-sample-ids", action="store_true", default=None,
                   help="write each rank's training item indices into metrics.jsonl (debugging)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    p.add_argument("--decoder", choices=("auto", "decord", "pyav"))
    p.set_defaults(func=cmd_train)
