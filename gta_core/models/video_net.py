"""VideoNet: R2D backbone + temporal blocks + TSN consensus, and the model registry.

`create_model("r2d50_gta")` is the whole story: a named variant is a small
`VideoNetConfig`; keyword overrides change any field
(`create_model("r2d50_gta", num_classes=10, gta_groups=4)`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from ..layers import DecoupledAttention, GTABlock, NonLocalBlock
from ..layers.non_local import POOL_PLACES
from .resnet2d import DEPTHS, ResNet2D

BLOCK_KINDS = ("none", "nl", "sa", "ta", "dnl", "tape", "gta")


@dataclass(frozen=True)
class VideoNetConfig:
    depth: int = 50                 # 18, 34 or 50
    width_multiplier: float = 1.0   # < 1 for small CPU demo models
    num_classes: int = 174          # Something-Something v2
    num_frames: int = 8             # T; fixed for TAPE/GTA, checked for all
    block: str = "none"             # one of BLOCK_KINDS
    # Paper §4.1: a block after every other residual block of res3 and res4
    # (2 in res3 and 3 in res4 for R2D-50).
    block_stages: tuple[str, ...] = ("res3", "res4")
    block_every: int = 2
    # Explicit positions instead: ((stage, (residual block indices...)), ...).
    # MMAction2's and TSM's NL models use res3 (0, 2) and res4 (0, 2, 4).
    block_positions: tuple[tuple[str, tuple[int, ...]], ...] | None = None
    tsm: bool = False               # temporal shift in every residual branch
    dropout: float = 0.5            # before the classifier, as in TSN
    # GTA ablation switches (Tables 4, 10, 11; Fig. 4).
    gta_pixel: bool = True
    gta_region: bool = True
    gta_cross_channel: bool = True
    gta_groups: int = 8
    gta_num_regions: int | None = None  # None: K = C/8
    # NL variants of published checkpoints (layers/non_local.py); the defaults
    # are the paper's (Table 1).
    nl_scale: bool = True           # softmax(θφᵀ/√C'); MMAction2 and TSM: False
    nl_pool: str = "after"          # φ/g pooled "after" the projection, "before" it, or "none"
    nl_pool_ceil: bool = True       # ceil (ours) or floor (MMAction2, TSM) on odd grids
    nl_out_bias: bool = True        # W^O bias; MMAction2: False

    def __post_init__(self) -> None:
        if self.block not in BLOCK_KINDS:
            raise ValueError(f"unknown block {self.block!r}; choose one of {BLOCK_KINDS}")
        if self.depth not in DEPTHS:
            raise ValueError(f"unknown depth {self.depth}; choose one of {sorted(DEPTHS)}")
        if self.num_frames < 1 or self.num_classes < 1:
            raise ValueError("num_frames and num_classes must be positive")
        if self.nl_pool not in POOL_PLACES:
            raise ValueError(f"unknown nl_pool {self.nl_pool!r}; choose one of {POOL_PLACES}")
        counts = dict(zip(("res2", "res3", "res4", "res5"), DEPTHS[self.depth][1]))
        for stage, indices in self.block_positions or ():
            if stage not in counts or not all(0 <= i < counts[stage] for i in indices):
                raise ValueError(
                    f"block position {stage} {list(indices)} is outside R2D-{self.depth} "
                    f"(blocks per stage: {counts})"
                )

    def insert_after(self) -> dict[str, tuple[int, ...]]:
        """Stage name -> indices of the residual blocks followed by a temporal block."""
        if self.block == "none":
            return {}
        if self.block_positions is not None:
            return {stage: tuple(indices) for stage, indices in self.block_positions}
        counts = DEPTHS[self.depth][1]
        return {
            stage: tuple(range(self.block_every - 1, counts[int(stage[3:]) - 2], self.block_every))
            for stage in self.block_stages
        }

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "VideoNetConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(unknown)}")
        values = dict(values)
        if "block_stages" in values:
            values["block_stages"] = tuple(values["block_stages"])
        if values.get("block_positions") is not None:  # JSON lists back to tuples
            values["block_positions"] = tuple(
                (str(stage), tuple(int(i) for i in indices)) for stage, indices in values["block_positions"]
            )
        return cls(**values)


def _block_factory(config: VideoNetConfig):
    frames = config.num_frames

    def make(channels: int) -> nn.Module:
        if config.block == "nl":
            return NonLocalBlock(
                channels,
                frames,
                pool=config.nl_pool,
                pool_ceil=config.nl_pool_ceil,
                scale=config.nl_scale,
                out_bias=config.nl_out_bias,
            )
        if config.block == "sa":
            return DecoupledAttention(channels, frames, temporal=False)
        if config.block == "ta":
            return DecoupledAttention(channels, frames, spatial=False)
        if config.block == "dnl":
            return DecoupledAttention(channels, frames)
        if config.block == "tape":
            return DecoupledAttention(channels, frames, positional=True)
        return GTABlock(
            channels,
            frames,
            pixel=config.gta_pixel,
            region=config.gta_region,
            cross_channel=config.gta_cross_channel,
            groups=config.gta_groups,
            num_regions=config.gta_num_regions,
        )

    return make


class VideoNet(nn.Module):
    """Clip (B, 3, T, H, W) -> logits (B, num_classes)."""

    def __init__(self, config: VideoNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNet2D(
            depth=config.depth,
            width_multiplier=config.width_multiplier,
            num_frames=config.num_frames,
            tsm=config.tsm,
            insert_after=config.insert_after(),
            make_block=_block_factory(config),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.backbone.out_channels, config.num_classes)

    def forward_features(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> per-frame features (B·T, C, h, w)."""
        if clip.dim() != 5 or clip.shape[1] != 3:
            raise ValueError(f"expected a clip of shape (B, 3, T, H, W), got {tuple(clip.shape)}")
        if clip.shape[2] != self.config.num_frames:
            raise ValueError(
                f"this model runs on exactly {self.config.num_frames} frames, got {clip.shape[2]}"
            )
        return self.backbone(rearrange(clip, "b c t h w -> (b t) c h w"))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Per-frame classifier, then TSN average consensus over T."""
        pooled = features.mean(dim=(2, 3))                      # (B·T, C)
        frame_logits = self.head(self.dropout(pooled))          # (B·T, N)
        return rearrange(frame_logits, "(b t) n -> b t n", t=self.config.num_frames).mean(dim=1)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(clip))

    def forward_from_block(self, name: str, block_input: torch.Tensor) -> torch.Tensor:
        """Logits when block `name` (e.g. "res3.1") receives `block_input` (B·T, C, H, W).

        Everything before the block is skipped: a sweep that changes only this
        block and what follows (knockouts) computes the prefix once.
        """
        stage, index = name.split(".")
        stages = ("res2", "res3", "res4", "res5")
        units = getattr(self.backbone, stage)
        x = units[int(index)].attention(block_input)
        for unit in units[int(index) + 1:]:
            x = unit(x)
        for later in stages[stages.index(stage) + 1:]:
            x = getattr(self.backbone, later)(x)
        return self.forward_head(x)

    def temporal_blocks(self) -> dict[str, nn.Module]:
        """Inserted blocks by readable name, e.g. {"res3.1": NonLocalBlock, ...}."""
        blocks = {}
        for stage in ("res2", "res3", "res4", "res5"):
            for index, unit in enumerate(getattr(self.backbone, stage)):
                if unit.attention is not None:
                    blocks[f"{stage}.{index}"] = unit.attention
        return blocks


# ---------------------------------------------------------------- registry

_REGISTRY: dict[str, VideoNetConfig] = {}


def register_model(name: str, config: VideoNetConfig) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = config


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_config(name: str, **overrides) -> VideoNetConfig:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return VideoNetConfig.from_dict({**_REGISTRY[name].to_dict(), **overrides})


def create_model(name: str, **overrides) -> VideoNet:
    return VideoNet(model_config(name, **overrides))


def _register_defaults() -> None:
    for depth in (18, 34, 50):
        for block in BLOCK_KINDS:
            suffix = "" if block == "none" else f"_{block}"
            register_model(f"r2d{depth}{suffix}", VideoNetConfig(depth=depth, block=block))
            register_model(f"r2d{depth}_tsm{suffix}", VideoNetConfig(depth=depth, block=block, tsm=True))
    # Small CPU demo models: R2D-18 at a quarter of the width, 8 frames, 112².
    for block in BLOCK_KINDS:
        suffix = "" if block == "none" else f"_{block}"
        for tsm in (False, True):
            register_model(
                f"demo_r2d18{'_tsm' if tsm else ''}{suffix}",
                VideoNetConfig(depth=18, width_multiplier=0.25, block=block, tsm=tsm, gta_groups=4),
            )


_register_defaults()
