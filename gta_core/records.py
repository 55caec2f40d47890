"""What each inserted block exposes for visualisation (`gta_core.capture` is the function defined here).

`capture(model, clip)` runs the model once and returns its logits plus one
record per inserted block. Each block declares what to hook and what record it
makes (`layers.protocol.AttentionBlock.watch` / `make_record`); this module
knows no block by name. The hooks keep references, never copies, and cannot
change the logits; every handle is removed afterwards, also when the forward
raises.

Records are lazy by default (`layers/attention_maps.py`): an NL or SA softmax
is kept as its query/key projections and each row's log-sum-exp, and a row is
computed exactly when a view asks for it (`record.row(t, y, x)`), so a
SlowFast-NL clip at 64×256² keeps tens of MB instead of 560 MB. `dense=True`
keeps every weight as the softmax returned it (tests, export of small models).
See docs/records.md.

Coordinates: a query (t, y, x) is given on the block's feature grid (H, W).
NL and SA keys live on the 2×2-pooled grid (h, w), which each block's own
pooling gives (⌈H/2⌉ for ours, ⌊H/2⌋ for imported MMAction2/TSM NL blocks).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from .layers import (  # noqa: F401  (the record types, re-exported: gta_core.records is their public home)
    BlockRecord, DecoupledRecord, FrameSpans, GTARecord, NonLocalRecord, Recorder, SoftmaxRows, SpatialMaps,
    TemporalMaps, decoupled_kind,
)
from .models import VideoNet

AttentionRecord = BlockRecord

# What `--records-dtype` accepts (app settings): records are kept on the CPU in this dtype.
RECORD_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class Capture:
    logits: torch.Tensor                          # (B, num_classes)
    records: dict[str, BlockRecord] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes held by the tensors of all records."""
        seen: dict[int, int] = {}
        for record in self.records.values():
            for value in record.tensors():
                seen[id(value)] = value.numel() * value.element_size()
        return sum(seen.values())

    def to(self, device=None, dtype: torch.dtype | None = None) -> Capture:
        """Every record on `device` with floating tensors as `dtype`; the logits on `device` as float32."""
        logits = self.logits.detach().to(device, torch.float32)
        return Capture(logits, {name: record.to(device, dtype) for name, record in self.records.items()})


@contextlib.contextmanager
def swapped_projections(model: VideoNet) -> Iterator[None]:
    """Within the block, every DNL block runs SA with TA's θ, φ, g and vice versa.

    It sets a flag on shared modules: callers that share a model between
    threads must hold their own lock around it.
    """
    blocks = [b for b in model.temporal_blocks().values() if b.can_swap_projections]
    previous = [b.swap_projections for b in blocks]
    try:
        for block in blocks:
            block.swap_projections = True
        yield
    finally:
        for block, state in zip(blocks, previous):
            block.swap_projections = state


def capture(model: VideoNet, clip: torch.Tensor, swap_projections: bool = False, dense: bool | None = None) -> Capture:
    """Logits of `clip` (B, 3, T, H, W) and a record per inserted block.

    dense: None keeps each softmax in its smaller exact form (lazy rows for NL
    and SA, the T'×T' weights for TA); True keeps every weight as the softmax
    returned it; False keeps every softmax lazily.
    """
    blocks = model.temporal_blocks()
    recorder = Recorder(dense)
    swap = swapped_projections(model) if swap_projections else contextlib.nullcontext()
    try:
        for block in blocks.values():
            block.watch(recorder)
        with swap, torch.inference_mode():
            logits = model(clip)
    finally:
        recorder.eject()
    batch = clip.shape[0]
    records = {
        name: block.make_record(recorder, name, batch, model.time_spans(name), swap_projections)
        for name, block in blocks.items()
    }
    return Capture(logits=logits, records=records)
