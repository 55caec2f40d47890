"""MMAction2 2-D recognizers (TSN / TSM, with or without non-local blocks).

Follows mmaction/models/backbones/resnet.py (ConvModule names: `conv1.conv`,
`conv1.bn`, `downsample.conv`/`.bn`), resnet_tsm.py (`TemporalShift` wraps
each block's `conv1.conv` as `.net`; `NL3DWrapper` wraps a block as `.block`
beside `.non_local_block`), mmcv/cnn/bricks/non_local.py (`theta`, `phi.0`,
`g.0` with 2×2 floor max-pooling when sub_sample, `conv_out.conv` without bias
and `conv_out.bn`), and heads/tsm_head.py (`cls_head.fc_cls`). Published
files are `{'meta': {...}, 'state_dict': {'backbone.…', 'cls_head.…'}}`.
Checked logit for logit against MMAction2 1.2.0 in tests/test_importers.py.
"""
from __future__ import annotations

import re

import torch

from .mapping import Rule
from .resnet import _BLOCK, _PARAM

LABEL = "MMAction2"
_CANON_BLOCK = "layer{layer}.{index}"
_WRAPPED = rf"backbone\.{_BLOCK}(\.block)?"          # NL3DWrapper puts the residual block under .block
_NL = rf"backbone\.{_BLOCK}\.non_local_block"

TO_CANONICAL = [
    Rule(r"backbone\.conv1\.conv\.weight", "conv1.weight"),
    Rule(rf"backbone\.conv1\.bn\.{_PARAM}", "bn1.{param}"),
    Rule(rf"{_WRAPPED}\.conv(?P<n>[1-3])\.conv(\.net)?\.weight", _CANON_BLOCK + ".conv{n}.weight"),
    Rule(rf"{_WRAPPED}\.conv(?P<n>[1-3])\.bn\.{_PARAM}", _CANON_BLOCK + ".bn{n}.{param}"),
    Rule(rf"{_WRAPPED}\.downsample\.conv\.weight", _CANON_BLOCK + ".downsample.0.weight"),
    Rule(rf"{_WRAPPED}\.downsample\.bn\.{_PARAM}", _CANON_BLOCK + ".downsample.1.{param}"),
    Rule(rf"{_NL}\.theta\.conv\.{_PARAM}", _CANON_BLOCK + ".nl.theta.{param}"),
    Rule(rf"{_NL}\.(?P<part>phi|g)(?P<pool>\.0)?\.conv\.{_PARAM}", _CANON_BLOCK + ".nl.{part}{pool}.{param}"),
    Rule(rf"{_NL}\.conv_out\.conv\.{_PARAM}", _CANON_BLOCK + ".nl.W.0.{param}"),
    Rule(rf"{_NL}\.conv_out\.bn\.{_PARAM}", _CANON_BLOCK + ".nl.W.1.{param}"),
    Rule(rf"cls_head\.fc_cls\.{_PARAM}", "fc.{param}"),
]

# mmengine's ImgDataPreprocessor keeps mean/std (0-255) as buffers in some checkpoints.
PREPROCESSOR_KEYS = ("data_preprocessor.mean", "data_preprocessor.std")


def _config_text(info: dict) -> str:
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    text = meta.get("cfg") or meta.get("config") or ""
    return text if isinstance(text, str) else ""


def settings(tensors: dict[str, torch.Tensor], info: dict) -> dict:
    """Model settings the keys cannot show, from the config text MMAction2 stores in `meta`.

    `use_scale` defaults to False: MMAction2's TSM/I3D non-local configs set
    it so. The TSM shift is read off the keys (a `.net` inside `conv1.conv`).
    """
    text = _config_text(info)
    shift_div = re.search(r"shift_div\s*=\s*(\d+)", text)
    if shift_div and int(shift_div[1]) != 8:
        raise ValueError(f"TSM shift_div={shift_div[1]} is not supported (ours shifts 1/8 of the channels each way)")
    return {
        "tsm": any(re.search(r"\.conv1\.conv\.net\.weight$", k) for k in tensors),
        "nl_scale": bool(re.search(r"use_scale\s*=\s*True", text)),
    }


def training_frames(info: dict, file_name: str) -> int | None:
    """Clip length the checkpoint was trained with: `num_segments=` in its config, or `1x1x8` in its name."""
    match = re.search(r"num_segments\s*=\s*(\d+)", _config_text(info)) or re.search(r"\d+x\d+x(\d+)", file_name)
    return int(match[1]) if match else None


def dataset_name(info: dict, file_name: str) -> str:
    text = (_config_text(info) + " " + file_name).lower()
    for token, name in (("kinetics400", "Kinetics-400"), ("kinetics-400", "Kinetics-400"), ("sthv2", "Something-Something v2"),
                        ("sthv1", "Something-Something v1"), ("kinetics600", "Kinetics-600"), ("kinetics700", "Kinetics-700")):
        if token in text:
            return name
    return ""


def pop_preprocessor(tensors: dict[str, torch.Tensor]) -> dict:
    """mean/std (0-1 units) from data_preprocessor buffers, removed from `tensors`."""
    found = {key.split(".")[-1]: tensors.pop(key) for key in PREPROCESSOR_KEYS if key in tensors}
    return {name: [round(float(v) / 255, 6) for v in value.flatten()] for name, value in found.items()}
