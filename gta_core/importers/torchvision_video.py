"""torchvision's video models (`r3d_18`, `mc3_18`, `r2plus1d_18`, `s3d`, `mvit_v2_s` state dicts) into our
`video_resnet` / `s3d` / `mvit` backbones.

    python -m gta_core import torchvision r3d_18-b3b3357e.pth --out DIR
    python -m gta_core import torchvision s3d-d76dad2f.pth --out DIR
    python -m gta_core import torchvision mvit_v2_s-ae3be167.pth --out DIR

Our layouts use torchvision's module names (models/video_resnet.py,
models/s3d.py), so the rename only adds `backbone.` and makes the classifier
our `head`. The architecture is read off the keys: `features.` is S3D's
(its classifier, `classifier.1`, a 1×1×1 Conv3d, becomes a Linear: the kernel
flattened); otherwise a video ResNet: a six-module stem (`stem.3`) is
R(2+1)D's, a 3×3×3 `layer2.0.conv1.0` R3D's and a 1×3×3 one MC3's.
What torchvision's weight enums (`R3D_18_Weights.KINETICS400_V1`, ...,
`S3D_Weights.KINETICS400_V1`) say about their Kinetics-400 checkpoints is used
as the defaults: their 400 category names (kinetics400_torchvision.txt, copied
from torchvision 0.28.0's `_KINETICS400_CATEGORIES`, the one list all four
enums use, and checked against them in the tests), and their
`VideoClassification` transform: mean (0.43216, 0.394666, 0.37645), std
(0.22803, 0.22145, 0.216989) for all; the ResNets resize every frame to
exactly 128×171 and crop 112, S3D to 256×256 and crops 224 (`resize_to`: the
aspect is not kept), bilinearly without antialiasing (cv2's INTER_LINEAR),
and its centre crop rounds an odd margin (`crop_rounding` "round"). The enums' `_docs` give the clip
length they were measured at: 16 frames for the ResNets, 128 for S3D.

MViT (`mvit.py` here) is recognised by `conv_proj` and `blocks.0.attn.rel_pos_t`
(MViTv2's relative positions; v1 has none and is refused). Its enum,
`MViT_V2_S_Weights.KINETICS400_V1`, has its own transform (mean and std
(0.45, 0.45, 0.45) / (0.225, 0.225, 0.225), a resize of the shorter side to
256 keeping the aspect, a 224 centre crop) and "clip_len=16".
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import torch

from . import mvit
from .mapping import MappingError, Rule

LABEL = "torchvision"
TO_OURS = {
    "video_resnet": [
        Rule(r"(?P<key>(stem|layer[1-4])\..+)", "backbone.{key}"),
        Rule(r"fc\.(?P<param>weight|bias)", "head.{param}"),
    ],
    "s3d": [
        Rule(r"(?P<key>features\..+)", "backbone.{key}"),
        Rule(r"classifier\.1\.(?P<param>weight|bias)", "head.{param}"),
    ],
    "mvit": mvit.TO_OURS,
}
CATEGORIES = Path(__file__).with_name("kinetics400_torchvision.txt")
# VideoClassification's default mean and std, which every KINETICS400_V1 enum keeps.
PREPROCESSING = {"mean": [0.43216, 0.394666, 0.37645], "std": [0.22803, 0.22145, 0.216989]}
# Its crop_size and resize_size per family: (112, 112), (128, 171) for the three ResNets; (224, 224), (256, 256)
# for S3D. resize_size is (H, W) exactly, the aspect not kept: resize_to; resize_shorter only says its shorter side.
# Its center_crop rounds an odd margin half to even (171 - 112 = 59: left 30, where MMAction2's floor gives 29).
SIZES = {"video_resnet": {"input_size": 112, "resize_shorter": 128, "resize_to": [128, 171], "crop_rounding": "round"},
         "s3d": {"input_size": 224, "resize_shorter": 256, "resize_to": [256, 256], "crop_rounding": "round"},
         "mvit": mvit.SIZES}
CLIP_LEN = {"video_resnet": 16, "s3d": 128, "mvit": 16}   # "clip_len=…" in the enums' _docs
RESIZE = ("bilinear", " (torchvision's VideoClassification resizes bilinearly)")
S3D_WIDTH = 1024                                    # channels of S3D's last Inception block


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


def _video_resnet(tensors: dict[str, torch.Tensor], what: str) -> dict:
    blocks = {re.match(r"layer[1-4]\.\d+", k)[0] for k in tensors if re.match(r"layer[1-4]\.\d+\.", k)}
    if len(blocks) != 8:
        raise MappingError(f"{what}: {len(blocks)} residual blocks; the 18-layer video ResNets have 8 (2 per layer)")
    if "fc.weight" not in tensors:
        raise MappingError(f"{what}: no classifier found (expected fc.weight)")
    return {"backbone": "video_resnet", "video_resnet": _architecture(tensors, what),
            "num_classes": int(tensors["fc.weight"].shape[0])}


def _s3d(tensors: dict[str, torch.Tensor], what: str) -> dict:
    """S3D's fields; its 1×1×1 classifier kernel is flattened in `tensors` to our Linear's (classes, 1024)."""
    kernel = tensors.get("classifier.1.weight")
    if kernel is None or kernel.dim() != 5 or tuple(kernel.shape[1:]) != (S3D_WIDTH, 1, 1, 1):
        shape = None if kernel is None else tuple(kernel.shape)
        raise MappingError(f"{what}: classifier.1.weight is {shape}; torchvision's S3D has (classes, 1024, 1, 1, 1)")
    tensors["classifier.1.weight"] = kernel.flatten(1)
    return {"backbone": "s3d", "num_classes": int(kernel.shape[0])}


def own_layout(tensors: dict[str, torch.Tensor], info: dict, file_name: str) -> dict:
    what = f"{file_name} (torchvision)"
    tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    assumed = {}
    if mvit.is_mvit(tensors):
        fields, assumed = mvit.read_fields(tensors, what)
    elif any(k.startswith("features.") for k in tensors):
        fields = _s3d(tensors, what)
    else:
        fields = _video_resnet(tensors, what)
    fields.update({"depth": 50, "block": "none", "dropout": 0.0})
    frames = CLIP_LEN[fields["backbone"]]
    assumed["clip_len"] = f"{frames} (torchvision's KINETICS400_V1 enums; a state dict does not say)"
    return {"fields": fields, "tensors": tensors, "rules": TO_OURS[fields["backbone"]], "assumed": assumed,
            "trained_frames": frames}


def class_names(num_classes: int) -> list[str] | None:
    """torchvision's Kinetics-400 categories for a 400-class head, else None (class_0, ... or --labels)."""
    names = CATEGORIES.read_text(encoding="utf-8").splitlines()
    return names if num_classes == len(names) else None


def pop_preprocessor(tensors: dict[str, torch.Tensor]) -> dict:
    """mean/std of the enums' transform (a state dict holds none); MViT's enum has its own."""
    return dict(mvit.PREPROCESSING if mvit.is_mvit(tensors) else PREPROCESSING)


def published_pipeline(fields: dict) -> dict:
    """The enum's resize and crop for the architecture (read_pipeline: below a config text, which torchvision files lack)."""
    return copy.deepcopy(SIZES[fields["backbone"]])     # its resize_to list is the config's own


def config_text(info: dict) -> str:
    """A state dict carries no config: the clip length and sampling come from the enums' docs or --frames."""
    return ""


def dataset_name(info: dict, file_name: str) -> str:
    return ""
