"""torchvision's video ResNets (`r3d_18`, `mc3_18`, `r2plus1d_18` state dicts) into our `video_resnet` backbone.

    python -m gta_core import torchvision r3d_18-b3b3357e.pth --out DIR

Our layout uses torchvision's module names (models/video_resnet.py), so the
rename only adds `backbone.` and makes `fc` our `head`. The architecture is
read off the keys: a six-module stem (`stem.3`) is R(2+1)D's; otherwise a
3×3×3 `layer2.0.conv1.0` is R3D's and a 1×3×3 one MC3's. What torchvision's
weight enums (`R3D_18_Weights.KINETICS400_V1`, ...) say about the three
Kinetics-400 checkpoints is used as the defaults: their 400 category names
(kinetics400_torchvision.txt, copied from torchvision 0.28.0's
`_KINETICS400_CATEGORIES`, and checked against the enums in the tests), and
their `VideoClassification` transform: resize to 128×171, centre crop 112,
mean (0.43216, 0.394666, 0.37645), std (0.22803, 0.22145, 0.216989). The
enums' `_docs` give the clip length they were measured at: 16 frames.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from .mapping import MappingError, Rule

LABEL = "torchvision"
TO_OURS = [
    Rule(r"(?P<key>(stem|layer[1-4])\..+)", "backbone.{key}"),
    Rule(r"fc\.(?P<param>weight|bias)", "head.{param}"),
]
CATEGORIES = Path(__file__).with_name("kinetics400_torchvision.txt")
# VideoClassification(crop_size=(112, 112), resize_size=(128, 171)) of the three KINETICS400_V1 enums.
PREPROCESSING = {"mean": [0.43216, 0.394666, 0.37645], "std": [0.22803, 0.22145, 0.216989],
                 "input_size": 112, "resize_shorter": 128}
CLIP_LEN = 16           # "clip_len=16" in the enums' _docs
RESIZE = ("bilinear", " (torchvision's VideoClassification resizes bilinearly)")


def _architecture(tensors: dict[str, torch.Tensor], what: str) -> str:
    if "stem.3.weight" in tensors:          # R(2+1)D's factored stem (its conv1.0 is itself a Sequential)
        return "r2plus1d_18"
    if "stem.0.weight" not in tensors or "layer2.0.conv1.0.weight" not in tensors:
        raise MappingError(f"{what}: no stem.0 / layer2.0.conv1.0 weights; not a torchvision video ResNet")
    kernel = tuple(tensors["layer2.0.conv1.0.weight"].shape[2:])
    architectures = {(3, 3, 3): "r3d_18", (1, 3, 3): "mc3_18"}
    if kernel not in architectures:
        raise MappingError(f"{what}: layer2.0.conv1.0 has a {kernel} kernel; expected (3, 3, 3) or (1, 3, 3)")
    return architectures[kernel]


def own_layout(tensors: dict[str, torch.Tensor], info: dict, file_name: str) -> dict:
    what = f"{file_name} (torchvision)"
    tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    blocks = {re.match(r"layer[1-4]\.\d+", k)[0] for k in tensors if re.match(r"layer[1-4]\.\d+\.", k)}
    if len(blocks) != 8:
        raise MappingError(f"{what}: {len(blocks)} residual blocks; the 18-layer video ResNets have 8 (2 per layer)")
    if "fc.weight" not in tensors:
        raise MappingError(f"{what}: no classifier found (expected fc.weight)")
    fields = {"backbone": "video_resnet", "video_resnet": _architecture(tensors, what), "depth": 50,
              "num_classes": int(tensors["fc.weight"].shape[0]), "block": "none", "dropout": 0.0}
    assumed = {"clip_len": f"{CLIP_LEN} (torchvision's KINETICS400_V1 enums; a state dict does not say)"}
    return {"fields": fields, "tensors": tensors, "rules": TO_OURS, "assumed": assumed, "trained_frames": CLIP_LEN}


def class_names(num_classes: int) -> list[str] | None:
    """torchvision's Kinetics-400 categories for a 400-class head, else None (class_0, ... or --labels)."""
    names = CATEGORIES.read_text(encoding="utf-8").splitlines()
    return names if num_classes == len(names) else None


def pop_preprocessor(tensors: dict[str, torch.Tensor]) -> dict:
    """mean/std of the enums' transform (a state dict holds none)."""
    return {key: PREPROCESSING[key] for key in ("mean", "std")}


def published_pipeline() -> dict:
    """The enums' resize and crop (read_pipeline: below a config text, which torchvision files lack)."""
    return {key: PREPROCESSING[key] for key in ("input_size", "resize_shorter")}


def config_text(info: dict) -> str:
    """A state dict carries no config: the clip length and sampling come from the enums' docs or --frames."""
    return ""


def dataset_name(info: dict, file_name: str) -> str:
    return ""
