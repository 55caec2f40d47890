"""What a training run is asked to do: `TrainConfig` (defaults < --config FILE < flags)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

METRICS_FILE = "metrics.jsonl"
RESUME_DIR = "resume"
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


def flip_allowed(class_names: list[str]) -> torch.Tensor:
    return torch.tensor([not any(w in n.lower() for w in NO_FLIP_WORDS) for n in class_names])
