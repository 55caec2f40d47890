"""A block defined in this file alone appears everywhere a built-in block does (issue 23).

`MeanPooling` is a toy "mean temporal pooling" attention: every time step
attends to every step of its pixel with equal weight, computed through the
one attention kernel (zero queries and keys), so capture records it like TA.
It subclasses `AttentionBlock`, registers itself, and is then built by
`create_model`, captured, shown by Query point and Temporal attention
(gta_core.views), counted by compare's class-level statistics, knocked out,
and exported, with no file of gta_core changed.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from einops import rearrange
from torch import nn

from gta_core import capture, create_model
from gta_core.comparison import ClipRows, global_matrices, temporal_attention_blocks
from gta_core.export.pipeline import ModelRun, _block_entries
from gta_core.interpret import Component, knockout, knockout_components
from gta_core.layers import AttentionBlock, AttentionSoftmax, BlockRecord, FrameSpans, Recorder, TemporalMaps, register_block
from gta_core.layers.common import attend, conv1x1
from gta_core.layers.protocol import bypass
from gta_core.views import query_view, temporal_matrices
from tests.helpers import one_thread  # noqa: F401  (module fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

B, T = 2, 4


@dataclass
class MeanRecord(BlockRecord):
    name: str
    temporal: TemporalMaps
    frame_spans: FrameSpans = ()
    kind: str = "mean"

    @property
    def num_steps(self) -> int:
        return self.temporal.pixel_mean.shape[-1]

    def query_grid(self):
        return self.temporal.grid

    def query_slices(self, step, y, x, batch=0):
        return {"temporal": self.temporal.weights_at(step, y, x, batch)}

    def temporal_matrices(self, batch=0):
        return {"mean pooling": self.temporal.mean_matrix(batch)}

    def clip_matrix(self):
        return self.temporal.pixel_mean.float()


class MeanPooling(AttentionBlock):
    """Y = X + BN(mean over T' of V W^O) at every pixel."""

    display_name = "MEAN"
    paper_reference = "a toy of tests/test_block_protocol.py"

    def __init__(self, channels: int, num_steps: int) -> None:
        super().__init__()
        self.num_steps = num_steps
        self.value = conv1x1(channels, channels // 4)
        self.softmax = AttentionSoftmax()
        self.out = conv1x1(channels // 4, channels)
        self.norm = nn.BatchNorm2d(channels)          # γ = 1: the block is active from the start

    def forward(self, x):
        height, width = x.shape[-2:]
        v = rearrange(self.value(x), "(b t) c h w -> (b h w) t c", t=self.num_steps)
        zeros = v.new_zeros(*v.shape[:2], 1)            # equal scores: softmax = 1/T' everywhere
        context = attend(zeros, zeros, v, 1.0, self.softmax)
        return x + self.norm(self.out(rearrange(context, "(b h w) t c -> (b t) c h w", h=height, w=width)))

    def watch(self, recorder: Recorder) -> None:
        recorder.watch_input(self)
        recorder.watch_rows(self.softmax)

    def make_record(self, recorder, name, batch, spans, swapped):
        grid = tuple(recorder.input_shapes[self][-2:])
        return MeanRecord(name, TemporalMaps.from_rows(recorder.rows(self.softmax), grid), spans)

    @property
    def compare_label(self):
        return self.display_name

    def knockout_parts(self):
        return [("temporal", None, None)]

    def knock_out(self, part, index, branch, undo: contextlib.ExitStack) -> None:
        if part != "temporal":
            super().knock_out(part, index, branch, undo)
        bypass(self, undo)


register_block("mean_pool", lambda config, channels, steps: MeanPooling(channels, steps))


def toy_model():
    torch.manual_seed(0)
    model = create_model("demo_r2d18_nl", block="mean_pool", num_classes=5, width_multiplier=0.125, num_frames=T,
                         block_positions=(("res3", (1,)),))
    return model.eval()


CLIP = torch.randn(B, 3, T, 56, 72, generator=torch.Generator().manual_seed(0))


def test_toy_block_is_captured_viewed_compared_knocked_out_and_exported():
    model = toy_model()
    assert isinstance(model.temporal_blocks()["res3.1"], MeanPooling)
    cap = capture(model, CLIP)
    record = cap.records["res3.1"]
    assert isinstance(record, MeanRecord) and record.query_grid() == (7, 9)
    uniform = np.full(T, 1 / T, dtype=np.float32)

    view = query_view(record, 2, 0.9, 0.1, batch=1)                     # Query point
    assert view.kind == "MEAN" and view.cell == (6, 0)
    np.testing.assert_allclose(view.temporal, uniform, atol=1e-6)
    matrices = temporal_matrices(record, batch=1)                     # Temporal attention
    np.testing.assert_allclose(matrices["mean pooling"], np.full((T, T), 1 / T), atol=1e-6)

    assert temporal_attention_blocks(model) == {"res3.1": "MEAN"}     # compare's class-level statistics
    assert global_matrices(model) == {}
    rows = ClipRows([model], [0], [5], T)
    parts = rows.split(rows(CLIP).numpy())
    np.testing.assert_allclose(parts[(0, "res3.1")], np.full((B, T, T), 1 / T), atol=1e-6)
    np.testing.assert_allclose(parts[(0, "logits")], cap.logits.numpy(), rtol=1e-4, atol=1e-5)

    components = knockout_components(model)                           # knockouts
    assert components == [Component("res3.1", "block"), Component("res3.1", "temporal")]
    results = knockout(model, CLIP[:1], components)
    assert all(np.abs(r.delta).max() > 1e-4 for r in results)        # the toy block changes the scores

    frames = np.zeros((T, 56, 56, 3), np.uint8)                        # export: the block's figures
    run = ModelRun("toy", None, frames, list(range(T)), CLIP[0], cap, None, np.full(5, 0.2))
    titles = [entry.title for entry in _block_entries(run, "res3.1", record)]
    assert any("temporal weights" in t for t in titles) and any("mean pooling" in t for t in titles)
