"""3-D ResNets (I3D-R50) in the canonical layout, and from there to our `backbone="i3d"` VideoNet.

Canonical 3-D keys are the 2-D ones (`conv1`, `bn1`, `layer1.0.conv1`, ...,
`layerX.Y.nl.*`, `fc`) holding 5-dim kernels. What the weights show is read
off them, following mmaction/models/backbones/resnet3d.py:

* the stem: `ResNet3d._make_stem_layer`'s conv1 of `conv1_kernel`; ours is
  i3d_r50.py's 5×7×7, 64 channels;
* per residual block, `Bottleneck3d`'s kernels: inflated "3x1x1" blocks have
  a 3×1×1 conv1 and a 1×3×3 conv2, plain ones 1×1×1 and 1×3×3; the "3x3x3"
  inflate style (1×1×1 conv1, 3×3×3 conv2) has no counterpart in ours;
* depth off the blocks per stage (Bottleneck3d, (3, 4, 6, 3) = ResNet-50).

Temporal strides (conv1_stride_t, pool1_stride_t, pool2) leave no trace in
the weights; the format module reads them from the source's config text.
"""
from __future__ import annotations

import torch

from .mapping import MappingError, Rule
from .resnet import (
    _BLOCK, _OURS, _PARAM, CANONICAL_TO_OURS, NL_TO_OURS, block_counts, describe, head_and_nl_fields, stem_weight,
)

STEM_SHAPE = (64, 3, 5, 7, 7)            # i3d_r50.py: base_channels 64, conv1_kernel (5, 7, 7)
R50_BLOCKS = (3, 4, 6, 3)
INFLATED, PLAIN, SPATIAL = (3, 1, 1), (1, 1, 1), (1, 3, 3)

CANONICAL_3D_TO_OURS = [
    Rule(r"conv1\.weight", "backbone.stem.0.0.weight"),
    Rule(rf"bn1\.{_PARAM}", "backbone.stem.0.1.{param}"),
    Rule(rf"{_BLOCK}\.conv(?P<n>[1-3])\.weight", _OURS + ".residual.conv{n}.0.weight"),
    Rule(rf"{_BLOCK}\.bn(?P<n>[1-3])\.{_PARAM}", _OURS + ".residual.conv{n}.1.{param}"),
    Rule(rf"{_BLOCK}\.downsample\.(?P<n>[01])\.{_PARAM}", _OURS + ".residual.downsample.{n}.{param}"),
    *NL_TO_OURS,
]


def _kernel(canonical: dict[str, torch.Tensor], key: str, what: str) -> tuple[int, ...]:
    weight = canonical[key]
    if weight.dim() != 5:
        raise MappingError(f"{what}: {key} {tuple(weight.shape)} is not a 3-D kernel beside a 3-D stem")
    return tuple(weight.shape[2:])


def _block_inflated(canonical: dict[str, torch.Tensor], block: str, what: str) -> int:
    """1 if residual block `block` (e.g. "layer2.0") is inflated (3×1×1 conv1), 0 if not; refuse the rest."""
    conv1 = _kernel(canonical, f"{block}.conv1.weight", what)
    conv2 = _kernel(canonical, f"{block}.conv2.weight", what)
    if conv1 == PLAIN and conv2 == (3, 3, 3):
        raise MappingError(
            f"{what}: {block}.conv2 is 3×3×3 (MMAction2's inflate_style '3x3x3'); ours inflates 3×1×1 conv1 only"
        )
    if conv1 not in (INFLATED, PLAIN) or conv2 != SPATIAL:
        raise MappingError(
            f"{what}: {block} kernels conv1 {conv1}, conv2 {conv2}; ours are (3, 1, 1) or (1, 1, 1), then (1, 3, 3)"
        )
    for key in (f"{block}.conv3.weight", f"{block}.downsample.0.weight"):
        if key in canonical and _kernel(canonical, key, what) != PLAIN:
            raise MappingError(f"{what}: {key} {tuple(canonical[key].shape)} is not a 1×1×1 convolution")
    return int(conv1 == INFLATED)


def describe_3d(canonical: dict[str, torch.Tensor], what: str) -> dict:
    """VideoNetConfig fields of an I3D-R50 read off canonical 3-D keys: inflate pattern, classes, NL blocks."""
    stem = tuple(stem_weight(canonical, what).shape)
    # i3d_r50.py's stem has 64 channels; ResNet3d's base_channels scales every stage alike (our width_multiplier).
    if stem[1:] != STEM_SHAPE[1:] or stem[0] < 8:
        raise MappingError(f"{what}: the 3-D stem conv1 is {stem}; ours is I3D's {STEM_SHAPE} (64 channels, 5×7×7)")
    counts, kind = block_counts(canonical)
    if (kind, counts) != ("bottleneck", R50_BLOCKS):
        raise MappingError(
            f"{what}: a 3-D {kind} ResNet with {counts} blocks per stage; only I3D-R50 {R50_BLOCKS} is supported"
        )
    inflate = tuple(
        tuple(_block_inflated(canonical, f"layer{layer}.{index}", what) for index in range(count))
        for layer, count in enumerate(counts, start=1)
    )
    return {"backbone": "i3d", "depth": 50, "width_multiplier": stem[0] / STEM_SHAPE[0], "inflate": inflate,
            **head_and_nl_fields(canonical, what)}


def read_layout(canonical: dict[str, torch.Tensor], what: str) -> tuple[dict, list[Rule]]:
    """(config fields, rules from canonical to our names): a 5-dim stem kernel means a 3-D ResNet."""
    if stem_weight(canonical, what).dim() == 5:
        return describe_3d(canonical, what), CANONICAL_3D_TO_OURS
    return describe(canonical, what), CANONICAL_TO_OURS
