"""Building a run: refuse a wrong setup, then data, model, augmentation, optimiser, resume position."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_checkpoint
from ..data.cache import CACHE_DIR, CachedClips, build_frame_cache
from ..data.ssv2 import SSv2Dataset
from ..distributed import DistEnv, barrier
from ..evaluate import reversed_targets
from ..importers import load_imagenet_backbone
from ..models import create_model, list_models, model_config
from ..video import ClipSpec
from .config import RESUME_DIR, TrainConfig, flip_allowed
from .optim import load_resume_state, make_optimizer, make_scheduler


def load_backbone(model: nn.Module, folder: str | Path) -> dict:
    """Copy a checkpoint's 2D backbone weights (not its temporal blocks, not its head) into `model`."""
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
    root = Path(__file__).resolve().parents[2]
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


# ---------------------------------------------------------------- building the run


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


def finished_run(cfg: TrainConfig) -> dict | None:
    """With --resume, a checkpoint in `out` without resume state is a finished run: its final metrics."""
    out = Path(cfg.out)
    if not cfg.resume or cfg.force or not (out / CONFIG_NAME).is_file() or (out / RESUME_DIR / "state.json").is_file():
        return None
    config = json.loads((out / CONFIG_NAME).read_text())
    if int(os.environ.get("RANK", "0")) == 0:
        epochs = config.get("provenance", {}).get("epochs_done", "?")
        print(f"{out}: the run is finished ({epochs} epochs, no {RESUME_DIR}/ left): nothing to resume; "
              "--force trains it again from the start", file=sys.stderr)
    return config.get("metrics", {})


@dataclass
class TrainData:
    train_set: Dataset
    val_set: Dataset               # what each epoch's validation reads (the frame cache when there is one)
    val_source: SSv2Dataset        # the real video path: the final numbers
    class_names: list[str]
    sampler: DistributedSampler
    loader: DataLoader


def build_data(cfg: TrainConfig, env: DistEnv, num_frames: int) -> TrainData:
    """The two splits (through the frame cache when asked), the sampler and the training loader."""
    data = Path(cfg.data)
    spec = ClipSpec(num_frames, cfg.input_size, cfg.resize_shorter, tuple(cfg.mean), tuple(cfg.std))
    train_src = SSv2Dataset(data, "train", spec, train=True, seed=cfg.seed, decoder=cfg.decoder)
    val_src = SSv2Dataset(data, "validation", spec, train=False, decoder=cfg.decoder)
    train_set, val_set = train_src, val_src
    if cfg.cache_frames:
        cache_dir = data / CACHE_DIR
        if env.is_main:
            for src in (train_src, val_src):
                build_frame_cache(src, cfg.resize_shorter, cfg.cache_max_frames, cache_dir, cfg.progress)
        barrier(env)

        def cached(src, **kwargs):
            path = build_frame_cache(src, cfg.resize_shorter, cfg.cache_max_frames, cache_dir, False)
            return CachedClips(src, path, num_frames, cfg.input_size, **kwargs)
        train_set, val_set = cached(train_src, train=True, seed=cfg.seed), cached(val_src, train=False)
    # One process is rank 0 of 1: the same seeded permutation per epoch as any rank's shard.
    sampler = DistributedSampler(train_set, env.world_size, env.rank, shuffle=True, seed=cfg.seed, drop_last=True)
    workers = cfg.workers if cfg.workers >= 0 else (0 if cfg.cache_frames else 2)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=workers,
                        drop_last=True, pin_memory=env.device.type == "cuda")
    if len(loader) == 0:
        raise ValueError(f"{len(train_set)} training clips make no full batch of {cfg.batch_size} per process")
    return TrainData(train_set, val_set, val_src, train_src.class_names, sampler, loader)


def build_model(cfg: TrainConfig, env: DistEnv, num_classes: int) -> tuple[nn.Module, nn.Module, dict | None]:
    """(the model to call: DDP under torchrun, the model itself, the backbone's init record)."""
    torch.manual_seed(cfg.seed)   # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = create_model(cfg.model, **{**cfg.model_overrides, "num_classes": num_classes})
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
    if not env.enabled:
        return model, model, init_record
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    return ddp, model, init_record


@dataclass
class Augment:
    """Training-time changes of a batch: horizontal flips (not for NO_FLIP_WORDS classes) and
    time reversal with the reverse pair's label (DATA/reverse_pairs.json)."""
    flippable: torch.Tensor | None          # (classes,) bool; None: no flips
    reverse_table: torch.Tensor | None      # (classes,) the reverse pair's label; None: no reversal
    reverse_p: float = 0.0

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """clips (B, 3, T, H, W), labels (B,)."""
        if self.flippable is not None:
            flip = (torch.rand(len(labels), device=clips.device) < 0.5) & self.flippable[labels]
            clips = torch.where(flip[:, None, None, None, None], clips.flip(dims=(4,)), clips)
        if self.reverse_table is not None:
            back = torch.rand(len(labels), device=clips.device) < self.reverse_p
            clips = torch.where(back[:, None, None, None, None], clips.flip(dims=(2,)), clips)  # T reversed
            labels = torch.where(back, self.reverse_table[labels], labels)
        return clips, labels


def build_augment(cfg: TrainConfig, class_names: list[str], device: torch.device) -> Augment:
    reverse_table = None
    if cfg.reverse_aug > 0:
        table = reversed_targets(Path(cfg.data), class_names, np.arange(len(class_names)))
        if table is None:
            raise ValueError(f"--reverse-aug needs {cfg.data}/reverse_pairs.json (classes in time-reversal pairs)")
        reverse_table = torch.as_tensor(table, device=device)
    flippable = flip_allowed(class_names).to(device) if cfg.hflip else None
    return Augment(flippable, reverse_table, cfg.reverse_aug)


@dataclass
class Run:
    """One training run's pieces, built once by `build_run`."""
    cfg: TrainConfig
    env: DistEnv
    data: TrainData
    model: nn.Module                        # DistributedDataParallel(raw) under torchrun, else raw
    raw: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    scaler: torch.amp.GradScaler
    augment: Augment
    record: dict                            # provenance, written into every checkpoint
    start_epoch: int = 0
    step: int = 0                           # optimiser steps taken
    train_seconds: float = 0.0


def build_run(cfg: TrainConfig, env: DistEnv, argv: list[str] | None) -> Run:
    arch = model_config(cfg.model, **cfg.model_overrides)
    data = build_data(cfg, env, arch.num_frames)
    model, raw, init_record = build_model(cfg, env, len(data.class_names))
    optimizer = make_optimizer(cfg, raw)
    if cfg.amp == "on" and env.device.type != "cuda":
        raise ValueError("--amp on needs CUDA (mixed precision is float16 autocast on the GPU)")
    scaler = torch.amp.GradScaler("cuda", enabled=env.device.type == "cuda" and cfg.amp != "off")
    start_epoch, step, train_seconds = resume(cfg, env, raw, optimizer, scaler)
    record = {
        "dataset": dataset_record(Path(cfg.data), data.train_set, data.val_set),
        "command": command_line(env, argv),
        **git_state(),
        "device": str(env.device.type) if env.device.type == "cpu" else torch.cuda.get_device_name(env.device),
        "world_size": env.world_size,
        "torch": torch.__version__,
        "seed": cfg.seed,   # also in train_config; top level so a reader (M̂₀ reconstruction) finds it
        "train_config": cfg.to_dict(),
        "init_from": init_record,
    }
    return Run(cfg, env, data, model, raw, optimizer, make_scheduler(cfg, optimizer, len(data.loader), step),
               scaler, build_augment(cfg, data.class_names, env.device), record, start_epoch, step, train_seconds)


def resume(cfg: TrainConfig, env: DistEnv, raw: nn.Module, optimizer, scaler) -> tuple[int, int, float]:
    """(first epoch, optimiser steps taken, training seconds): from OUT/resume with --resume, else a new run."""
    resume_dir = Path(cfg.out) / RESUME_DIR
    if not (cfg.resume and (resume_dir / "state.json").is_file()):
        return 0, 0, 0.0
    raw.load_state_dict(load_checkpoint(cfg.out).model.state_dict())
    state = load_resume_state(resume_dir, optimizer, scaler)
    if state["model"] != cfg.model or state["world_size"] != env.world_size:
        raise ValueError(f"{resume_dir} is from {state['model']} on {state['world_size']} processes; "
                         f"this run is {cfg.model} on {env.world_size}")
    if env.is_main:
        print(f"resuming after epoch {state['epoch'] + 1} (step {state['step']})", file=sys.stderr)
    return state["epoch"] + 1, state["step"], state["train_seconds"]
