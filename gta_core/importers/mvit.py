"""torchvision's MViTv2 state dicts (`mvit_v2_s`) into our `mvit` backbone (models/mvit.py): part of `import torchvision`.

The rename adds `backbone.`; torchvision's classifier `head.1` (after a
Dropout, `head.0`) is our `head`. The blocks are read off the keys:

* heads = the qkv width / 3 / the head width (the rel-pos tables' columns);
  in / out widths from `qkv` and `mlp.3`;
* a query stride of 2 where the width changes (`project` present), else 1,
  and the key stride MViTv2's adaptive rule gives: 8 at the first block,
  divided by each query stride on the way (mvit_v2_s's 8, 4, 4, 2, ..., 1, 1);
* the (frames, side) the relative-position tables are sized for: 2·T' and
  4·S' from block 0's `rel_pos_t` (2T' − 1 rows) and `rel_pos_h` (2S' − 1).

The strides are not in the weights: they follow torchvision's and PySlowFast's
MViTv2 configurations, and a state dict that does not fit them fails to
load (every table's size depends on them). The widths and heads must be
those of a v2 layout (proj_after_attn: the attention already has the out width).
"""
from __future__ import annotations

import re

import torch

from ..models.mvit import PATCH_STRIDE, V2_S_BLOCKS
from .mapping import MappingError, Rule

TO_OURS = [
    Rule(r"(?P<key>(conv_proj|pos_encoding|blocks\.\d+|norm)\..+)", "backbone.{key}"),
    Rule(r"head\.1\.(?P<param>weight|bias)", "head.{param}"),
]
FIRST_KEY_STRIDE = 8      # PySlowFast's POOL_KV_STRIDE_ADAPTIVE [1, 8, 8]; torchvision's mvit_v2_s table
# MViT_V2_S_Weights.KINETICS400_V1's transform: VideoClassification(crop_size=(224, 224), resize_size=(256,),
# mean=(0.45,)*3, std=(0.225,)*3): the shorter side to 256 (the aspect kept), a 224 centre crop that rounds.
PREPROCESSING = {"mean": [0.45, 0.45, 0.45], "std": [0.225, 0.225, 0.225]}
SIZES = {"input_size": 224, "resize_shorter": 256, "crop_rounding": "round"}


def display_name(label: str, fields: dict) -> str:
    blocks = fields["mvit_blocks"]
    return f"{label} mvit_v2_s" if blocks is None else f"{label} mvit ({len(blocks)} blocks)"


def is_mvit(tensors: dict[str, torch.Tensor]) -> bool:
    keys = {k.removeprefix("module.") for k in tensors}
    return "conv_proj.weight" in keys and any(k.startswith("blocks.0.attn.") for k in keys)


def _block(tensors: dict[str, torch.Tensor], index: int, strides: tuple[int, int], what: str) -> tuple[int, ...]:
    """(heads, in width, out width, query stride, key stride) of block `index`; `strides` as read_fields infers them."""
    prefix = f"blocks.{index}."
    try:
        qkv, mlp_out = tensors[prefix + "attn.qkv.weight"], tensors[prefix + "mlp.3.weight"]
        head_dim = tensors[prefix + "attn.rel_pos_h"].shape[1]
    except KeyError as missing:
        raise MappingError(f"{what}: no {missing.args[0]}; not torchvision's MViTv2 (mvit_v2_s) layout") from None
    attn_dim, in_dim, out_dim = qkv.shape[0] // 3, qkv.shape[1], mlp_out.shape[0]
    if attn_dim != out_dim or attn_dim % head_dim:
        raise MappingError(f"{what}: block {index} attends at width {attn_dim} with {head_dim}-wide heads and "
                           f"outputs {out_dim}; MViTv2's layout attends at its output width")
    return (attn_dim // head_dim, in_dim, out_dim, *strides)


def read_fields(tensors: dict[str, torch.Tensor], what: str) -> tuple[dict, dict]:
    """(config fields, notes of what the weights do not say) of a torchvision MViTv2 state dict."""
    if "blocks.0.attn.rel_pos_t" not in tensors:
        raise MappingError(f"{what}: MViT without relative positions (mvit_v1_b?); only MViTv2 (mvit_v2_s) is supported")
    if "head.1.weight" not in tensors:
        raise MappingError(f"{what}: no classifier found (expected head.1.weight)")
    count = 1 + max(int(re.match(r"blocks\.(\d+)\.", k)[1]) for k in tensors if re.match(r"blocks\.\d+\.", k))
    blocks, key_stride = [], FIRST_KEY_STRIDE
    for index in range(count):
        query_stride = 2 if f"blocks.{index}.project.weight" in tensors else 1
        key_stride = max(1, key_stride // query_stride)
        blocks.append(_block(tensors, index, (query_stride, key_stride), what))
    steps = (tensors["blocks.0.attn.rel_pos_t"].shape[0] + 1) // 2
    side = (tensors["blocks.0.attn.rel_pos_h"].shape[0] + 1) // 2
    v2_s = tuple(blocks) == V2_S_BLOCKS
    fields = {"backbone": "mvit", "num_classes": int(tensors["head.1.weight"].shape[0]),
              "mvit_blocks": None if v2_s else tuple(blocks),      # None: mvit_v2_s's own table
              "mvit_trained_size": (steps * PATCH_STRIDE[0], side * PATCH_STRIDE[1])}
    assumed = {} if v2_s else {
        "mvit_strides": "query stride 2 where the width changes, key strides 8 / the query strides so far "
                        "(MViTv2's adaptive rule; a state dict does not hold strides)"}
    return fields, assumed
