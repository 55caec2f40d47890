"""Capture of TimeSformer's divided space-time attention as the existing SA / TA records.

A `DividedSpaceTimeBlock` (layers/divided.py) becomes a `DividedRecord`, a
`DecoupledRecord` whose SA and TA parts the Query point, Temporal attention
and Dataset views read like a DNL block's. What they hold:

* TA: `TemporalMaps` (B, h, w, T, T), each patch's attention over its own T
  time steps (each step one input frame). The CLS token takes no part in TA.
* SA: `SpatialMaps` (B, T, h·w, h·w), each patch query's weights over the
  frame's patches. TimeSformer's SA keys are [CLS; patches], so these rows
  sum to 1 minus the weight on the CLS key, which is kept separately
  (`cls_key_weight`), as is the CLS query's own row over the patches
  (`cls_query_row`, one per frame: the CLS token is copied into every
  frame's sequence).
* Heads: the mean over the attention heads, for SA and TA alike.

The patch grid is the block's feature grid (no key pooling: key cell = query cell).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from .layers.divided import DividedSpaceTimeBlock
from .records import DecoupledRecord, FrameSpans, SpatialMaps, TemporalMaps

KIND = "divided"        # block_kind() shows "DIVIDED"


@dataclass
class DividedRecord(DecoupledRecord):
    cls_key_weight: torch.Tensor | None = None   # (B, T, h·w): SA weight of each patch query on the CLS key
    cls_query_row: torch.Tensor | None = None    # (B, T, h·w): the CLS query's SA weights over the patches


def attach(recorder, block: DividedSpaceTimeBlock) -> None:
    """Hooks on the block's two softmaxes, and on its input for (B, T, h, w)."""
    def remember_shape(module, args):
        batch, frames = args[1].shape[:2]
        recorder.input_shapes[module] = torch.Size((batch, frames, *args[2]))
    recorder.handles.append(block.register_forward_pre_hook(remember_shape))
    recorder.watch_output(block.temporal.attend)
    recorder.watch_output(block.spatial.attend)


def record(recorder, name: str, block: DividedSpaceTimeBlock, spans: FrameSpans) -> DividedRecord:
    batch, frames, height, width = recorder.input_shapes[block]
    # SA: (B·T·heads, 1 + h·w, 1 + h·w), token 0 the CLS; TA: (B·h·w·heads, T, T).
    spatial = rearrange(recorder.outputs[block.spatial.attend], "(b t n) q k -> b t n q k", b=batch, t=frames)
    spatial = spatial.mean(dim=2)
    temporal = rearrange(
        recorder.outputs[block.temporal.attend], "(b y x n) q k -> b y x n q k", b=batch, y=height, x=width
    ).mean(dim=3)
    cells = (tuple((i, i + 1) for i in range(height)), tuple((i, i + 1) for i in range(width)))
    return DividedRecord(
        name,
        spatial=SpatialMaps(spatial[:, :, 1:, 1:], (height, width), (height, width), cells),
        temporal=TemporalMaps(temporal),
        positional=False,
        swapped=False,
        kind=KIND,
        frame_spans=spans,
        cls_key_weight=spatial[:, :, 1:, 0],
        cls_query_row=spatial[:, :, 0, 1:],
    )
