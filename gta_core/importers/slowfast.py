"""MMAction2's SlowFast-R50 and SlowOnly-R50 onto our SlowFast (models/slowfast.py), with its MMAction2 switches.

Follows mmaction/models/backbones/resnet3d_slowfast.py (`ResNet3dSlowFast`:
`slow_path` / `fast_path` are `ResNet3dPathway`s, i.e. ResNet3d with the same
ConvModule names as I3D, plus the laterals `conv1_lateral` and
`layer{1,2,3}_lateral` on the Slow pathway), resnet3d_slowonly.py (the Slow
pathway alone, keys without `slow_path.`) and heads/slowfast_head.py
(`SlowFastHead` classifies cat(Fast, Slow): 256 + 2048 = 2304 inputs, Fast
first, where ours concatenates Slow first; the columns are swapped here).

What the weights show: the widths (the Slow stem's channels; the Fast
pathway's must be 1/8 of them, `channel_ratio` 8), the lateral kernel
(`fusion_kernel`: 5 in 4×16×1, 7 in 8×8×1) and whether the laterals have a
BatchNorm (`lateral_norm`, False in MMAction2's configs). Temporal kernels
(the Slow pathway's inflate (0, 0, 1, 1), the Fast pathway's 3×1×1
everywhere) are checked by shape when the weights are loaded. What they do
not show: α. MMAction2 samples the Slow pathway at every `resample_rate` τ-th
frame and the Fast one at every τ/α-th (`speed_ratio` α); ours needs τ = α (the
Fast pathway sees every frame), as in both published recipes. α comes from
the config text in `meta`, else from the file name (4×16×1: 8, 8×8×1: 4).
"""
from __future__ import annotations

import re

import torch

from .mapping import MappingError, Rule
from .resnet import _PARAM, head_and_nl_fields

_PATH = r"backbone\.(?P<path>slow|fast)_path"
_UNIT = rf"{_PATH}\.layer(?P<layer>[1-4])\.(?P<index>\d+)"
_OUR_UNIT = "backbone.{path}_res{stage}.{index}.residual"
_LATERAL = r"backbone\.slow_path\.(?:conv1|layer(?P<layer>[1-3]))_lateral"
_PLACED = r"backbone\.slow_path\.fuse_(?P<place>stem|res[2-4])_lateral"
# mmcv's NonLocal3d inside a Slow pathway Bottleneck3d (ResNet3dPathway's `non_local` setting).
_NL = r"backbone\.slow_path\.layer(?P<layer>[1-4])\.(?P<index>\d+)\.non_local_block"
_OUR_NL = "backbone.slow_res{stage}.{index}.attention"
# Its parts as the canonical names resnet.head_and_nl_fields reads (`layerX.Y.nl.theta`, `.nl.W.1`, ...).
_NL_PARTS = {"theta.conv": "theta", "phi.conv": "phi", "phi.0.conv": "phi.0", "g.conv": "g", "g.0.conv": "g.0",
             "conv_out.conv": "W.0", "conv_out.bn": "W.1"}

TO_OURS = [
    Rule(rf"{_PATH}\.conv1\.conv\.weight", "backbone.{path}_stem.0.0.weight"),
    Rule(rf"{_PATH}\.conv1\.bn\.{_PARAM}", "backbone.{path}_stem.0.1.{param}"),
    Rule(rf"{_UNIT}\.conv(?P<n>[1-3])\.conv\.weight", _OUR_UNIT + ".conv{n}.0.weight"),
    Rule(rf"{_UNIT}\.conv(?P<n>[1-3])\.bn\.{_PARAM}", _OUR_UNIT + ".conv{n}.1.{param}"),
    Rule(rf"{_UNIT}\.downsample\.conv\.weight", _OUR_UNIT + ".downsample.0.weight"),
    Rule(rf"{_UNIT}\.downsample\.bn\.{_PARAM}", _OUR_UNIT + ".downsample.1.{param}"),
    # Laterals after `_lateral_place` has named their place: conv1_lateral follows the stem (our
    # fuse_stem), layerN_lateral stage N (our fuse_res{N+1}).
    Rule(rf"{_PLACED}\.conv\.weight", "backbone.fuse_{place}.lateral.0.weight"),
    Rule(rf"{_PLACED}\.bn\.{_PARAM}", "backbone.fuse_{place}.lateral.1.{param}"),
    Rule(rf"{_NL}\.theta\.conv\.{_PARAM}", _OUR_NL + ".query.{param}"),
    Rule(rf"{_NL}\.phi(\.0)?\.conv\.{_PARAM}", _OUR_NL + ".key.{param}"),
    Rule(rf"{_NL}\.g(\.0)?\.conv\.{_PARAM}", _OUR_NL + ".value.{param}"),
    Rule(rf"{_NL}\.conv_out\.conv\.{_PARAM}", _OUR_NL + ".out.{param}"),
    Rule(rf"{_NL}\.conv_out\.bn\.{_PARAM}", _OUR_NL + ".norm.{param}"),
    Rule(rf"cls_head\.fc_cls\.{_PARAM}", "head.{param}"),
]
SLOW_STEM, FAST_STEM = "backbone.slow_path.conv1.conv.weight", "backbone.fast_path.conv1.conv.weight"
# ResNet3dSlowFast's default τ = α = 8, and the α of the published recipes by file-name tag.
DEFAULT_ALPHA = 8
RECIPE_ALPHA = {"4x16x1": 8, "8x8x1": 4}
BETA_INV = 8


def _lateral_place(key: str) -> str:
    """`…slow_path.layer2_lateral.conv.weight` -> `…slow_path.fuse_res3_lateral.conv.weight`."""
    match = re.match(_LATERAL, key)
    if match is None:
        return key
    place = "stem" if match["layer"] is None else f"res{int(match['layer']) + 1}"
    return key.replace(match[0], f"backbone.slow_path.fuse_{place}_lateral", 1)


def kind(tensors: dict[str, torch.Tensor]) -> str | None:
    """"slowfast", "slowonly" (a 3-D stem of temporal kernel 1 without pathways) or None (not ours to read)."""
    if SLOW_STEM in tensors:
        return "slowfast"
    stem = tensors.get("backbone.conv1.conv.weight")
    if stem is not None and stem.dim() == 5 and stem.shape[2] == 1:
        return "slowonly"
    return None


def _alpha(config_text: str, file_name: str, backbone_setting) -> tuple[int, str]:
    """α (= τ) from the config text, else the recipe in the file name, else ResNet3dSlowFast's default."""
    speed, rate = backbone_setting("speed_ratio"), backbone_setting("resample_rate")
    if speed is not None or rate is not None:
        speed, rate = int(speed or DEFAULT_ALPHA), int(rate or DEFAULT_ALPHA)
        if speed != rate:
            raise ValueError(
                f"{file_name}: resample_rate τ={rate} and speed_ratio α={speed} differ, so MMAction2's Fast "
                f"pathway sees every {rate // max(speed, 1)}th frame; ours sees every frame (τ = α)"
            )
        return speed, f"α = {speed} (speed_ratio = resample_rate, read from the config text)"
    for tag, alpha in RECIPE_ALPHA.items():
        if tag in file_name:
            return alpha, f"α = {alpha} (the {tag} recipe named in the file name; the file has no config)"
    return DEFAULT_ALPHA, f"α = {DEFAULT_ALPHA} (assumed: ResNet3dSlowFast's default; neither config nor file name says)"


def layout(tensors: dict[str, torch.Tensor], config_text: str, file_name: str, backbone_setting) -> dict | None:
    """For a SlowFast / SlowOnly file: our config fields, the tensors under our names, notes; else None.

    `backbone_setting(name)` reads a backbone setting from the config text (mmaction2.py's reader).
    """
    found = kind(tensors)
    if found is None:
        return None
    what = f"{file_name} (mmaction2 {found})"
    if found == "slowonly":   # the Slow pathway's names, without the pathway
        tensors = {k.replace("backbone.", "backbone.slow_path.", 1): v for k, v in tensors.items()}
    tensors = {_lateral_place(k): v for k, v in tensors.items()}
    slow_base = int(tensors[SLOW_STEM].shape[0])
    fields = {"backbone": "slowfast", "depth": 50, "width_multiplier": slow_base / 64, "block": "none"}
    notes = {}
    if found == "slowfast":
        fast_base = int(tensors[FAST_STEM].shape[0])
        if fast_base * BETA_INV != slow_base:
            raise MappingError(
                f"{what}: Slow stem {slow_base} channels, Fast stem {fast_base}: channel_ratio "
                f"{slow_base / fast_base:g}; ours is {BETA_INV}"
            )
        alpha, notes["alpha"] = _alpha(config_text, file_name, backbone_setting)
        lateral = tensors["backbone.slow_path.fuse_stem_lateral.conv.weight"]
        fields.update(
            slowfast_alpha=alpha,
            slowfast_fusion_kernel=int(lateral.shape[2]),
            slowfast_lateral_norm="backbone.slow_path.fuse_stem_lateral.bn.weight" in tensors,
        )
        tensors = _slow_first_head(tensors, fast_channels=fast_base * 32, what=what)
    else:
        fields.update(slowfast_alpha=1, slowfast_fast_pathway=False)
        notes["temporal_strides"] = "ResNet3dSlowOnly's (conv1_stride_t 1, pool1_stride_t 1, no pool2; not in the weights)"
    if "cls_head.fc_cls.weight" not in tensors:
        raise MappingError(f"{what}: no classifier found (expected cls_head.fc_cls)")
    fields["num_classes"] = int(tensors["cls_head.fc_cls.weight"].shape[0])
    fields.update(_non_local_fields(tensors, what))
    return {"fields": fields, "tensors": tensors, "assumed": notes, "kind": found}


def _non_local_fields(tensors: dict[str, torch.Tensor], what: str) -> dict:
    """NL blocks of the Slow pathway: positions and variant, read as for I3D (resnet.head_and_nl_fields)."""
    if any(re.match(r"backbone\.fast_path\.layer[1-4]\.\d+\.non_local_block\.", key) for key in tensors):
        raise MappingError(f"{what}: non-local blocks on the Fast pathway; ours sit on the Slow pathway only")
    canonical = {}
    for key, value in tensors.items():
        match = re.match(rf"{_NL}\.(?P<part>.+)\.(?P<param>[^.]+)$", key)
        if match:        # an unknown part (mmcv's concatenation mode) keeps its name: head_and_nl_fields refuses it
            part = _NL_PARTS.get(match["part"], match["part"])
            canonical[f"layer{match['layer']}.{match['index']}.nl.{part}.{match['param']}"] = value
    fields = head_and_nl_fields(canonical, what)
    return {} if fields["block"] == "none" else fields


def _slow_first_head(tensors: dict[str, torch.Tensor], fast_channels: int, what: str) -> dict[str, torch.Tensor]:
    """SlowFastHead's fc columns are [Fast | Slow]; ours are [Slow | Fast]."""
    weight = tensors["cls_head.fc_cls.weight"]
    if weight.shape[1] <= fast_channels:
        raise MappingError(f"{what}: cls_head.fc_cls has {weight.shape[1]} inputs, fewer than the Fast pathway's")
    fast, slow = weight[:, :fast_channels], weight[:, fast_channels:]
    return {**tensors, "cls_head.fc_cls.weight": torch.cat([slow, fast], dim=1)}


def training_frames(kind_: str, config_text: str, file_name: str, alpha: int) -> int | None:
    """The clip length: SampleFrames' clip_len, else the file name's recipe (SlowFast: Slow frames × α)."""
    match = re.search(r"clip_len\s*=\s*(\d+)", config_text)
    if match:
        return int(match[1])
    match = re.search(r"(\d+)x\d+x\d+", file_name)
    if match is None:
        return None
    return int(match[1]) * (alpha if kind_ == "slowfast" else 1)
