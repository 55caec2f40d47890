"""The canonical layout every ResNet format is renamed to first, and from it to ours.

Canonical keys are torchvision's ResNet names (`conv1`, `bn1`,
`layer1.0.conv1`, `layer1.0.downsample.0`, `fc`) plus, for a non-local block
after residual block i of a stage, the TSM repository's names
(`layer2.0.nl.theta`, `nl.phi.0`, `nl.g.0`, `nl.W.0` (W^O), `nl.W.1` (its
BatchNorm)). A format module only says how its keys become canonical ones;
this module says how canonical keys of a 2-D ResNet become ours and reads the
architecture off them (`resnet3d.py` does the same for 3-D kernels).
"""
from __future__ import annotations

import re

import torch

from ..models.resnet2d import DEPTHS
from .mapping import MappingError, Rule

STAGE_NAMES = {1: "res2", 2: "res3", 3: "res4", 4: "res5"}

_PARAM = r"(?P<param>weight|bias|running_mean|running_var|num_batches_tracked)"
_BLOCK = r"layer(?P<layer>[1-4])\.(?P<index>\d+)"
_OURS = "backbone.res{stage}.{index}"

# The non-local block's parts are the same module in 2-D and 3-D backbones.
NL_TO_OURS = [
    Rule(rf"{_BLOCK}\.nl\.theta\.{_PARAM}", _OURS + ".attention.query.{param}"),
    Rule(rf"{_BLOCK}\.nl\.phi(\.0)?\.{_PARAM}", _OURS + ".attention.key.{param}"),
    Rule(rf"{_BLOCK}\.nl\.g(\.0)?\.{_PARAM}", _OURS + ".attention.value.{param}"),
    Rule(rf"{_BLOCK}\.nl\.W\.0\.{_PARAM}", _OURS + ".attention.out.{param}"),
    Rule(rf"{_BLOCK}\.nl\.W\.1\.{_PARAM}", _OURS + ".attention.norm.{param}"),
    Rule(rf"fc\.{_PARAM}", "head.{param}"),
]

CANONICAL_TO_OURS = [
    Rule(r"conv1\.weight", "backbone.stem.0.weight"),
    Rule(rf"bn1\.{_PARAM}", "backbone.stem.1.{param}"),
    Rule(rf"{_BLOCK}\.conv(?P<n>[1-3])\.weight", _OURS + ".residual.conv{n}.weight"),
    Rule(rf"{_BLOCK}\.bn(?P<n>[1-3])\.{_PARAM}", _OURS + ".residual.bn{n}.{param}"),
    Rule(rf"{_BLOCK}\.downsample\.(?P<n>[01])\.{_PARAM}", _OURS + ".residual.downsample.{n}.{param}"),
    *NL_TO_OURS,
]


def stem_weight(canonical: dict[str, torch.Tensor], what: str) -> torch.Tensor:
    if "conv1.weight" not in canonical:
        raise MappingError(f"{what}: no stem convolution (conv1) found; is this a ResNet?")
    return canonical["conv1.weight"]


def block_counts(canonical: dict[str, torch.Tensor]) -> tuple[tuple[int, ...], str]:
    """Residual blocks per stage (layer1..layer4) and their kind ("bottleneck" or "basic")."""
    blocks: dict[int, set[int]] = {layer: set() for layer in range(1, 5)}
    for key in canonical:
        match = re.match(r"layer([1-4])\.(\d+)\.", key)
        if match:
            blocks[int(match[1])].add(int(match[2]))
    kind = "bottleneck" if "layer1.0.conv3.weight" in canonical else "basic"
    return tuple(len(blocks[layer]) for layer in range(1, 5)), kind


def head_and_nl_fields(canonical: dict[str, torch.Tensor], what: str) -> dict:
    """Classes (off `fc`) and the non-local blocks' positions and variant (off `layerX.Y.nl.*`)."""
    fields: dict = {"block": "none"}
    if "fc.weight" in canonical:
        fields["num_classes"] = int(canonical["fc.weight"].shape[0])
    positions: dict[str, list[int]] = {}
    for key in canonical:
        match = re.match(r"layer([1-4])\.(\d+)\.nl\.", key)
        if match:
            positions.setdefault(STAGE_NAMES[int(match[1])], []).append(int(match[2]))
    if not positions:
        return fields
    nl_keys = [k for k in canonical if ".nl." in k]
    blocks = {key.split(".nl.")[0] for key in nl_keys}
    projected = {key.split(".nl.")[0] for key in nl_keys if re.search(r"\.nl\.(theta|phi)\.", key)}
    # mmcv's 'gaussian' mode has no θ/φ (its `phi` is a parameterless max-pool); the other modes have both.
    if projected and projected != blocks:
        raise MappingError(f"{what}: some non-local blocks have θ/φ and some do not; ours has one NL mode per model")
    if not any(".nl.W.1." in k for k in nl_keys):
        raise MappingError(f"{what}: non-local blocks without a norm after W^O are not supported")
    unknown = [k for k in nl_keys if not re.search(r"\.nl\.(theta|phi|g|W)\.", k)]
    if unknown:
        raise MappingError(
            f"{what}: unknown non-local parts ({', '.join(unknown[:3])}); the 'concatenation' NL mode is not supported"
        )
    fields.update(
        block="nl",
        block_positions=tuple((stage, tuple(sorted(set(idx)))) for stage, idx in sorted(positions.items())),
        nl_pool="after" if any(".nl.g.0." in k for k in nl_keys) else "none",
        nl_pool_ceil=False,
        nl_out_bias=any(re.search(r"\.nl\.W\.0\.bias$", k) for k in nl_keys),
        # Off the keys only "gaussian" (no θ/φ) shows; dot_product looks like embedded_gaussian (the format reads it).
        nl_mode="embedded_gaussian" if projected else "gaussian",
    )
    return fields


def describe(canonical: dict[str, torch.Tensor], what: str) -> dict:
    """VideoNetConfig fields of a 2-D ResNet read off canonical keys: depth, classes, NL positions and variant."""
    stem = stem_weight(canonical, what)
    if stem.dim() != 4:
        raise MappingError(
            f"{what}: the stem is a {stem.dim() - 2}-D convolution {tuple(stem.shape)}; "
            "expected a 2-D (TSN/TSM) or 3-D (I3D) ResNet"
        )
    if stem.shape[0] != 64:
        raise MappingError(f"{what}: stem width {stem.shape[0]}, expected 64 (a standard ResNet)")
    counts, kind = block_counts(canonical)
    depth = next((d for d, spec in DEPTHS.items() if spec == (kind, counts)), None)
    if depth is None:
        raise MappingError(f"{what}: a {kind} ResNet with {counts} blocks per stage is not one of ResNet-18/34/50")
    return {"depth": depth, "width_multiplier": 1.0, **head_and_nl_fields(canonical, what)}
