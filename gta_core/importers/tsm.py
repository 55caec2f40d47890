"""The official TSM repository (mit-han-lab/temporal-shift-module) checkpoints.

Follows ops/models.py (`TSN`: a torchvision ResNet as `base_model`, its fc
replaced by dropout, the classifier `new_fc`; saved from nn.DataParallel, so
every key starts with `module.`), ops/temporal_shift.py (`TemporalShift`
wraps each block's `conv1` as `.net`, place 'blockres') and ops/non_local.py
(`NL3DWrapper`: `.block` and `.nl`; `nl.theta`, `nl.phi.0`, `nl.g.0` with
floor 2×2 max-pooling, `nl.W.0` with bias, `nl.W.1` its BatchNorm; softmax
without scaling). Files are `{'epoch', 'arch', 'state_dict', 'best_prec1'}`.
The maths is MMAction2's TSM-R50-NL; tests/test_importers.py maps an
MMAction2-built model onto these names and checks the logits.
"""
from __future__ import annotations

import re

import torch

from .mapping import Rule
from .resnet import _BLOCK, _PARAM

LABEL = "TSM"
_CANON_BLOCK = "layer{layer}.{index}"
_BASE = r"(module\.)?base_model"
_WRAPPED = rf"{_BASE}\.{_BLOCK}(\.block)?"

TO_CANONICAL = [
    Rule(rf"{_BASE}\.conv1\.weight", "conv1.weight"),
    Rule(rf"{_BASE}\.bn1\.{_PARAM}", "bn1.{param}"),
    Rule(rf"{_WRAPPED}\.conv(?P<n>[1-3])(\.net)?\.weight", _CANON_BLOCK + ".conv{n}.weight"),
    Rule(rf"{_WRAPPED}\.bn(?P<n>[1-3])\.{_PARAM}", _CANON_BLOCK + ".bn{n}.{param}"),
    Rule(rf"{_WRAPPED}\.downsample\.(?P<n>[01])\.{_PARAM}", _CANON_BLOCK + ".downsample.{n}.{param}"),
    Rule(rf"{_BASE}\.{_BLOCK}\.nl\.(?P<part>theta|phi\.0|phi|g\.0|g|W\.0|W\.1)\.{_PARAM}",
         _CANON_BLOCK + ".nl.{part}.{param}"),
    Rule(rf"(module\.)?new_fc\.{_PARAM}", "fc.{param}"),
]


def settings(tensors: dict[str, torch.Tensor], info: dict, file_name: str, fields: dict) -> tuple[dict, dict]:
    """The shift is read off the keys; the repository's NL softmax is never scaled.

    Returns (VideoNetConfig fields, provenance notes): ops/non_local.py has one
    mode, the embedded Gaussian, so there is nothing to assume.
    """
    if fields.get("backbone", "r2d") != "r2d":
        raise ValueError(f"{file_name}: a 3-D stem; the TSM repository's models are 2-D ResNets")
    if fields.get("nl_mode") == "gaussian":
        raise ValueError(f"{file_name}: non-local blocks without θ/φ; ops/non_local.py has only the embedded Gaussian")
    notes = {"nl_mode": "embedded_gaussian (the only mode of ops/non_local.py)"} if fields["block"] == "nl" else {}
    return {"tsm": any(re.search(r"\.conv1\.net\.weight$", k) for k in tensors), "nl_scale": False}, notes


# ops/transforms.py GroupScale(256) resizes with PIL's bilinear, which antialiases when shrinking;
# cv2 has no such filter, and INTER_AREA is the nearer of its two (pixels differ by a few levels).
RESIZE = ("area", " (the TSM repository's GroupScale uses PIL's antialiased bilinear; cv2 INTER_AREA is nearest)")


def config_text(info: dict) -> str:
    """The repository's files carry no config: sampling comes from the file name."""
    return ""


def training_frames(info: dict, file_name: str, backbone: str = "r2d") -> int | None:
    """`segment8` in the published file names (TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth)."""
    match = re.search(r"segment(\d+)", file_name)
    return int(match[1]) if match else None


def dataset_name(info: dict, file_name: str) -> str:
    name = file_name.lower()
    for token, label in (("kinetics", "Kinetics-400"), ("somethingv2", "Something-Something v2"),
                         ("something", "Something-Something v1")):
        if token in name:
            return label
    return ""


def pop_preprocessor(tensors: dict[str, torch.Tensor]) -> dict:
    return {}
