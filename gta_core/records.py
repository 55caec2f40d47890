"""What each inserted block exposes for visualisation (`gta_core.capture` is the function defined here).

`capture(model, clip)` runs the model once and returns its logits plus one
typed record per inserted block. Attention weights are read with forward
hooks on the blocks' named softmax modules (`attend`, `regions`) and hook
points (`mixed_regions`); the hooks keep references, never copies, so a
capture costs the memory of the weights it keeps, not extra compute, and it
cannot change the logits. Every handle is removed afterwards, also when the
forward raises.

Coordinates: a query (t, y, x) is given on the block's feature grid (H, W).
NL and SA keys live on the 2×2-pooled grid (h, w), which each block's own
pooling gives (⌈H/2⌉ for ours, ⌊H/2⌋ for imported MMAction2/TSM NL blocks).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from .layers import DecoupledAttention, GlobalTemporalAttention, GTABlock, NonLocalBlock
from .layers.divided import DividedSpaceTimeBlock
from .layers.common import pooled_grid, pooled_spans
from .models import VideoNet


# Per time step of a block: the [start, stop) input frames it stands for. R2D: ((0, 1), (1, 2), ...);
# SlowFast's Slow pathway: ((0, 4), (4, 8), ...); I3D's res3/res4: ((0, 8), (8, 16), ...).
FrameSpans = tuple[tuple[int, int], ...]


@dataclass
class SpatialMaps:
    """SA weights: for each frame, every query pixel over the pooled key pixels."""

    weights: torch.Tensor          # (B, T, H·W, h·w)
    grid: tuple[int, int]          # (H, W) query grid
    key_grid: tuple[int, int]      # (h, w) key grid
    # Per axis (rows, columns): the [start, stop) query-grid cells each key cell pools.
    key_spans: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] = ((), ())

    def map_at(self, t: int, y: int, x: int, batch: int = 0) -> torch.Tensor:
        """(h, w) attention of query pixel (y, x) of frame t over that frame."""
        row = self.weights[batch, t, y * self.grid[1] + x]
        return row.reshape(self.key_grid)


@dataclass
class TemporalMaps:
    """TA/TAPE weights: for each pixel, a T×T matrix (query frame × key frame)."""

    weights: torch.Tensor          # (B, H, W, T, T)

    def weights_at(self, t: int, y: int, x: int, batch: int = 0) -> torch.Tensor:
        """(T,) weights of query frame t at pixel (y, x) over the T key frames."""
        return self.weights[batch, y, x, t]

    def mean_matrix(self, batch: int = 0) -> torch.Tensor:
        """(T, T) weights averaged over pixels (the TA counterpart of Fig. 5)."""
        return self.weights[batch].mean(dim=(0, 1))


@dataclass
class NonLocalRecord:
    name: str
    weights: torch.Tensor          # (B, T·H·W, T·h·w)
    num_frames: int
    grid: tuple[int, int]
    key_grid: tuple[int, int]
    key_spans: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] = ((), ())  # as in SpatialMaps
    frame_spans: FrameSpans = ()
    kind: str = "nl"

    def row(self, t: int, y: int, x: int, batch: int = 0) -> torch.Tensor:
        """(T, h, w): the attention of query (t, y, x) over all of space-time (Fig. 1)."""
        height, width = self.grid
        query = (t * height + y) * width + x
        return self.weights[batch, query].reshape(self.num_frames, *self.key_grid)


@dataclass
class DecoupledRecord:
    """SA, TA, SA+TA (DNL) or SA+TAPE blocks."""

    name: str
    spatial: SpatialMaps | None
    temporal: TemporalMaps | None
    positional: bool               # TAPE
    swapped: bool                  # captured with swapped projections (Fig. 7)
    kind: str                      # decoupled_kind(): "sa", "ta", "tape", "dnl" or "sa+tape"
    frame_spans: FrameSpans = ()

    @property
    def swappable(self) -> bool:
        """SA and TA (or TAPE) both present: what `capture(..., swap_projections=True)` changes (Fig. 7)."""
        return self.spatial is not None and self.temporal is not None


@dataclass
class GTARecord:
    name: str
    spatial: SpatialMaps
    # Learned matrices as (G, N_h, T, T): [group, head, output frame, input frame].
    pixel_matrix: torch.Tensor | None
    region_matrix: torch.Tensor | None
    regions: torch.Tensor | None          # (B, T, K, H, W): G_R per frame, each map sums to 1
    # (B, K): each region's contribution to the block's output, after W_R^O and the closing
    # BatchNorm's scale, averaged over frames (see `_region_contribution`).
    region_strength: torch.Tensor | None
    frame_spans: FrameSpans = ()
    kind: str = "gta"

    def regions_by_strength(self, batch: int = 0) -> list[int]:
        """Region indices, strongest first."""
        if self.region_strength is None:
            return []
        return torch.argsort(self.region_strength[batch], descending=True).tolist()

    @staticmethod
    def mean_abs(matrix: torch.Tensor) -> torch.Tensor:
        """(T, T) mean |M̂| over groups and heads, as drawn in the paper's Fig. 5."""
        return matrix.abs().mean(dim=(0, 1))


AttentionRecord = NonLocalRecord | DecoupledRecord | GTARecord


@dataclass
class Capture:
    logits: torch.Tensor                          # (B, num_classes)
    records: dict[str, AttentionRecord] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes held by the tensors of all records."""
        seen: dict[int, int] = {}
        for record in self.records.values():
            for value in _tensors(record):
                seen[id(value)] = value.numel() * value.element_size()
        return sum(seen.values())


def _tensors(record) -> Iterator[torch.Tensor]:
    for value in vars(record).values():
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (SpatialMaps, TemporalMaps)):
            yield from _tensors(value)


def decoupled_kind(block: DecoupledAttention) -> str:
    """One of "sa", "ta", "tape" (TA with its positional embedding), "dnl" (SA then TA), "sa+tape"."""
    temporal = None if block.temporal is None else "tape" if block.temporal.positional is not None else "ta"
    if block.spatial is None:
        if temporal is None:
            raise ValueError("a DecoupledAttention block without SA and without TA")
        return temporal
    return {None: "sa", "ta": "dnl", "tape": "sa+tape"}[temporal]


def _as_group_head(matrix: torch.Tensor | None) -> torch.Tensor | None:
    """Any GTA matrix layout -> (G, N_h, T, T)."""
    if matrix is None:
        return None
    matrix = matrix.detach()
    if matrix.dim() == 2:
        return matrix[None, None]
    if matrix.dim() == 3:
        return matrix[:, None]
    return matrix


class _Recorder:
    """Collects hook outputs and block input shapes by module, then builds records."""

    def __init__(self) -> None:
        self.outputs: dict[nn.Module, torch.Tensor] = {}
        self.input_shapes: dict[nn.Module, torch.Size] = {}
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def watch_output(self, module: nn.Module) -> None:
        def hook(mod, args, output):
            self.outputs[mod] = output.detach()
        self.handles.append(module.register_forward_hook(hook))

    def watch_input(self, module: nn.Module) -> None:
        def hook(mod, args):
            self.input_shapes[mod] = args[0].shape
        self.handles.append(module.register_forward_pre_hook(hook))

    def eject(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    # -- per block type

    def attach(self, block: nn.Module) -> None:
        if isinstance(block, DividedSpaceTimeBlock):      # TimeSformer: its adapter (divided_records.py)
            from . import divided_records
            divided_records.attach(self, block)
        elif isinstance(block, NonLocalBlock):
            self.watch_input(block)
            self.watch_output(block.attend)
        elif isinstance(block, (DecoupledAttention, GTABlock)):
            for part in (block.spatial, block.temporal):
                if part is None:
                    continue
                self.watch_input(part)
                if isinstance(part, GlobalTemporalAttention):
                    if part.region_assign is not None:
                        self.watch_output(part.regions)
                        self.watch_output(part.mixed_regions)
                else:
                    self.watch_output(part.attend)

    def spatial_maps(self, part, batch: int, frames: int) -> SpatialMaps:
        height, width = self.input_shapes[part][-2:]
        weights = rearrange(self.outputs[part.attend], "(b t) q k -> b t q k", b=batch, t=frames)
        spans = (pooled_spans(part.pool, height), pooled_spans(part.pool, width))
        return SpatialMaps(weights, (height, width), pooled_grid(part.pool, height, width), spans)

    def temporal_maps(self, part, batch: int) -> TemporalMaps:
        height, width = self.input_shapes[part][-2:]
        weights = rearrange(self.outputs[part.attend], "(b h w) q k -> b h w q k", b=batch, h=height, w=width)
        return TemporalMaps(weights)

    def record(self, name: str, block: nn.Module, batch: int, spans: FrameSpans, swapped: bool) -> AttentionRecord:
        # The block's time steps T' (after a 3D backbone's temporal strides): its input is (B·T', C, H, W).
        frames = len(spans)
        if isinstance(block, DividedSpaceTimeBlock):
            from . import divided_records
            return divided_records.record(self, name, block, spans)
        if isinstance(block, NonLocalBlock):
            height, width = self.input_shapes[block][-2:]
            key_spans = (pooled_spans(block.pool, height), pooled_spans(block.pool, width))
            return NonLocalRecord(
                name, self.outputs[block.attend], frames, (height, width), block.key_grid(height, width), key_spans,
                frame_spans=spans,
            )
        if isinstance(block, DecoupledAttention):
            return DecoupledRecord(
                name,
                spatial=self.spatial_maps(block.spatial, batch, frames) if block.spatial else None,
                temporal=self.temporal_maps(block.temporal, batch) if block.temporal else None,
                positional=block.temporal is not None and block.temporal.positional is not None,
                swapped=swapped and block.spatial is not None and block.temporal is not None,
                kind=decoupled_kind(block),
                frame_spans=spans,
            )
        gta = block.temporal
        regions = strength = None
        if gta.region_assign is not None:
            height, width = self.input_shapes[gta][-2:]
            regions = rearrange(
                self.outputs[gta.regions], "(b t) k (h w) -> b t k h w", b=batch, t=frames, h=height, w=width
            )
            mixed = rearrange(self.outputs[gta.mixed_regions], "(b k) t c -> b k t c", b=batch)
            strength = _region_contribution(gta, regions, mixed)
        return GTARecord(
            name,
            spatial=self.spatial_maps(block.spatial, batch, frames),
            pixel_matrix=_as_group_head(gta.pixel_matrix),
            region_matrix=_as_group_head(gta.region_matrix),
            regions=regions,
            region_strength=strength,
            frame_spans=spans,
        )


def _region_contribution(gta: GlobalTemporalAttention, regions: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    """(B, K) norm of what region k adds to the block's output, averaged over frames.

    Region k adds, at pixel p of frame t, s·G_R[k, p] · D W_R^O m_k(t) (s = H·W/K,
    m_k the region's features after M̂_R, D the BatchNorm's γ/√(var + ε)): its
    norm over pixels and channels is s·‖G_R[k]‖ · ‖D W_R^O m_k(t)‖. Measured
    after W_R^O and D, it does not change when a head's M̂_R is scaled by c and
    its W_R^O columns by 1/c (the same function), unlike ‖m_k‖.
    """
    height, width = regions.shape[-2:]
    scale = height * width / gta.num_regions
    norm = gta.norm
    with torch.no_grad():
        out = gta.region_out.weight[:, :, 0, 0]                              # (C, C_R)
        gain = norm.weight / torch.sqrt(norm.running_var + norm.eps)          # D, per output channel
        projected = torch.einsum("oc,bktc->bkto", out, mixed) * gain         # (B, K, T, C)
        spread = regions.flatten(-2).norm(dim=-1).transpose(1, 2)            # (B, K, T): ‖G_R[k]‖ per frame
        return (scale * spread * projected.norm(dim=-1)).mean(dim=-1)


@contextlib.contextmanager
def swapped_projections(model: VideoNet) -> Iterator[None]:
    """Within the block, every DNL block runs SA with TA's θ, φ, g and vice versa.

    It sets a flag on shared modules: callers that share a model between
    threads must hold their own lock around it.
    """
    blocks = [b for b in model.temporal_blocks().values() if isinstance(b, DecoupledAttention)]
    previous = [b.swap_projections for b in blocks]
    try:
        for block in blocks:
            block.swap_projections = True
        yield
    finally:
        for block, state in zip(blocks, previous):
            block.swap_projections = state


def capture(model: VideoNet, clip: torch.Tensor, swap_projections: bool = False) -> Capture:
    """Logits of `clip` (B, 3, T, H, W) and an AttentionRecord per inserted block."""
    blocks = model.temporal_blocks()
    recorder = _Recorder()
    swap = swapped_projections(model) if swap_projections else contextlib.nullcontext()
    try:
        for block in blocks.values():
            recorder.attach(block)
        with swap, torch.inference_mode():
            logits = model(clip)
    finally:
        recorder.eject()
    batch = clip.shape[0]
    records = {
        name: recorder.record(name, block, batch, model.time_spans(name), swap_projections)
        for name, block in blocks.items()
    }
    return Capture(logits=logits, records=records)
