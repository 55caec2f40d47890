"""The paper's attention blocks. Each takes and returns (B·T, C, H, W) features."""
from .common import AttentionSoftmax
from .gta import GlobalTemporalAttention, GTABlock, temporal_mix
from .non_local import NonLocalBlock
from .self_attention import DecoupledAttention, QueryKeyValue, SpatialAttention, TemporalAttention

__all__ = [
    "AttentionSoftmax",
    "DecoupledAttention",
    "GlobalTemporalAttention",
    "GTABlock",
    "NonLocalBlock",
    "QueryKeyValue",
    "SpatialAttention",
    "TemporalAttention",
    "temporal_mix",
]
