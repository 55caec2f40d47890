"""The paper's attention blocks. Each takes and returns (B·T', C, H, W) features.

Every block subclasses `protocol.AttentionBlock` and registers itself with
`protocol.register_block`, so capture, views, compare, knockouts and export
need no list of blocks (see protocol.py).
"""
from .attention_maps import DependencePart, FrameSpans, Problem, Recorder, SoftmaxRows, SpatialMaps, TemporalMaps
from .common import AttentionSoftmax
from .protocol import BLOCK_BUILDERS, AttentionBlock, BlockRecord, register_block
# Imported in this order so that BLOCK_BUILDERS lists nl, sa, ta, dnl, tape, gta.
from .non_local import NonLocalBlock, NonLocalRecord  # noqa: I001
from .self_attention import (
    DecoupledAttention, DecoupledRecord, QueryKeyValue, SpatialAttention, TemporalAttention, decoupled_kind,
)
from .gta import GlobalTemporalAttention, GTABlock, GTARecord, temporal_mix

__all__ = [
    "AttentionBlock",
    "AttentionSoftmax",
    "BLOCK_BUILDERS",
    "BlockRecord",
    "DecoupledAttention",
    "DecoupledRecord",
    "DependencePart",
    "FrameSpans",
    "GlobalTemporalAttention",
    "GTABlock",
    "GTARecord",
    "NonLocalBlock",
    "NonLocalRecord",
    "Problem",
    "QueryKeyValue",
    "Recorder",
    "SoftmaxRows",
    "SpatialAttention",
    "SpatialMaps",
    "TemporalAttention",
    "TemporalMaps",
    "decoupled_kind",
    "register_block",
    "temporal_mix",
]
