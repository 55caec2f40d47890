"""The optimiser, its learning-rate schedule and its state between runs (safetensors + JSON, no pickle)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from .config import TrainConfig

MATRIX_NAMES = ("pixel_matrix", "region_matrix")    # GTA's M̂: their own lr and decay
NO_DECAY_NAMES = ("positional",)                     # TAPE's position table, like biases and BatchNorm

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
    """Three groups: weights (decayed), BatchNorm, biases and TAPE's position table (not), GTA's M̂
    (their own lr and decay).

    The position table (a TemporalAttention's `positional`, (T, C), initialised to the sin/cos table)
    is chosen by name like M̂, not by ndim: decay would pull every step's code towards zero, erasing
    the order it encodes, which no gradient asks for (timm leaves `pos_embed` out of decay likewise).

    Each group's lr is cfg.lr × its "lr_mult" × the schedule (see make_scheduler).

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
        leaf = name.rsplit(".", 1)[-1]
        if leaf in MATRIX_NAMES:
            matrices.append(p)
        else:
            (no_decay if p.ndim <= 1 or leaf in NO_DECAY_NAMES else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "lr_mult": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0}]
    if matrices:
        groups.append({"params": matrices, "weight_decay": cfg.matrix_weight_decay, "lr_mult": cfg.matrix_lr_mult})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    raise ValueError(f"optimizer must be sgd or adamw, got {cfg.optimizer!r}")


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                   step: int = 0) -> LambdaLR:
    """torch's LambdaLR over `lr_factor`: group lr = cfg.lr × its "lr_mult" × lr_factor(step).

    `step` is the next optimiser step (0 for a new run, the saved position for a
    resumed one); `scheduler.step()` after each optimiser step moves it on.
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = cfg.lr * group["lr_mult"]
    return LambdaLR(optimizer, lambda s: lr_factor(cfg, s, steps_per_epoch), last_epoch=step - 1)


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
