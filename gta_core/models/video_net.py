"""VideoNet: a backbone (R2D, I3D or SlowFast) + temporal blocks + a classifier, built from a `VideoNetConfig`.

The named variants (`create_model("r2d50_gta")`) are in `registry.py`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from einops import rearrange
from pydantic import Field
from torch import nn

from ..schema import validate
from ..layers import BLOCK_BUILDERS
from ..layers.non_local import NL_MODES, POOL_PLACES
from .resnet2d import DEPTHS, ResNet2D
from .resnet3d import I3D_INFLATE, ResNet3D
from .s3d import S3D, TIME_STRIDE as S3D_TIME_STRIDE
from .slowfast import ALPHA, FUSION_KERNEL, SLOW_SAMPLINGS, SlowFast
from .mvit import TIME_STRIDE as MVIT_TIME_STRIDE, TRAINED_SIZE as MVIT_TRAINED_SIZE, V2_S_BLOCKS, MViT
from .timesformer import TimeSformer
from .video_resnet import ARCHITECTURES as VIDEO_RESNETS, VideoResNet

# The built-in kinds; `layers.register_block` adds more (VideoNetConfig checks BLOCK_BUILDERS itself).
BLOCK_KINDS = ("none", *BLOCK_BUILDERS)
# r2d: a 2D ResNet per frame (the paper's R2D); i3d: MMAction2's ResNet3d (I3D-R50);
# slowfast: PySlowFast's SlowFast-R50 (the paper's 3D backbone).
# timesformer: HF transformers' TimeSformer (divided space-time attention in every layer; imported only).
# video_resnet: torchvision's r3d_18 / mc3_18 / r2plus1d_18; s3d: torchvision's S3D (both imported only).
# mvit: torchvision's MViTv2 (mvit_v2_s; pooled space-time attention in every layer; imported only).
BACKBONES = ("r2d", "i3d", "slowfast", "timesformer", "video_resnet", "s3d", "mvit")
IMPORTED_AS_IS = ("timesformer", "video_resnet", "s3d", "mvit")     # no inserted blocks
# Input frames per time step of the 3D backbones' res3/res4 (where blocks sit): the clip length must divide.
# SlowFast: the config's slowfast_alpha (`frames_per_step`). S3D (no blocks): its last map, Grad-CAM's layer.
FRAMES_PER_STEP = {"i3d": 8, "slowfast": ALPHA, "s3d": S3D_TIME_STRIDE, "mvit": MVIT_TIME_STRIDE}
# Bounds a config read from a file must meet (checked by gta_core.schema through pydantic): wide
# enough for every published model, narrow enough that a 1 KB config cannot ask for gigabytes.
Stage = Literal["res2", "res3", "res4", "res5"]
BlockIndex = Annotated[int, Field(ge=0, le=63)]
SLOWFAST_POOLS = ("ceil", "floor")
Width = Annotated[int, Field(ge=1, le=4096)]
# One MViT block: (heads, in width, out width, spatial query stride, spatial key stride).
MViTBlock = tuple[Annotated[int, Field(ge=1, le=64)], Width, Width, Annotated[int, Field(ge=1, le=8)],
                  Annotated[int, Field(ge=1, le=32)]]


@dataclass(frozen=True)
class VideoNetConfig:
    backbone: str = "r2d"           # one of BACKBONES
    depth: int = 50                 # 18, 34 or 50 (3D backbones: 50)
    width_multiplier: Annotated[float, Field(gt=0, le=2)] = 1.0   # < 1 for small CPU demo models
    num_classes: Annotated[int, Field(ge=1, le=25_000)] = 174       # Something-Something v2
    num_frames: Annotated[int, Field(ge=1, le=256)] = 8             # T; fixed for TAPE/GTA, checked for all
    input_size: Annotated[int, Field(ge=16, le=2048)] = 224  # the crop side the model is counted at (`flops`)
    block: str = "none"             # one of BLOCK_KINDS
    # Paper §4.1: a block after every other residual block of res3 and res4
    # (2 in res3 and 3 in res4 for R2D-50).
    block_stages: tuple[Stage, ...] = ("res3", "res4")
    block_every: Annotated[int, Field(ge=1, le=64)] = 2
    # Explicit positions instead: ((stage, (residual block indices...)), ...).
    # MMAction2's and TSM's NL models use res3 (0, 2) and res4 (0, 2, 4).
    block_positions: tuple[tuple[Stage, tuple[BlockIndex, ...]], ...] | None = None
    tsm: bool = False               # temporal shift in every residual branch
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.5   # before the classifier, as in TSN
    # GTA ablation switches (Tables 4, 10, 11; Fig. 4).
    gta_pixel: bool = True
    gta_region: bool = True
    gta_cross_channel: bool = True
    gta_groups: Annotated[int, Field(ge=1, le=512)] = 8
    gta_num_regions: Annotated[int, Field(ge=1, le=4096)] | None = None  # None: K = C/8
    # NL variants of published checkpoints (layers/non_local.py); the defaults
    # are the paper's (Table 1).
    nl_scale: bool = True           # softmax(θφᵀ/√C'); MMAction2 and TSM: False
    nl_pool: str = "after"          # φ/g pooled "after" the projection, "before" it, or "none"
    nl_pool_ceil: bool = True       # ceil (ours) or floor (MMAction2, TSM) on odd grids
    nl_out_bias: bool = True        # W^O bias; MMAction2: False
    # mmcv's NL mode: "embedded_gaussian" (ours), "gaussian" (no θ/φ) or "dot_product" (θφᵀ/N, signed rows).
    nl_mode: str = "embedded_gaussian"
    sa_pool: str = "after"          # SA's (also in DNL, TAPE, GTA) keys/values: pooled "after"/"before" projection
    # I3D only: per stage, which residual blocks get a 3×1×1 first convolution (None: MMAction2's i3d_r50).
    inflate: tuple[tuple[Literal[0, 1], ...], ...] | None = None
    # SlowFast only (models/slowfast.py). PySlowFast's (ours) unless an importer says otherwise.
    slowfast_alpha: Annotated[int, Field(ge=1, le=64)] = ALPHA   # Fast : Slow frame rate (MMAction2 speed_ratio)
    slowfast_fusion_kernel: Annotated[int, Field(ge=1, le=15)] = FUSION_KERNEL  # lateral temporal kernel (MMAction2: 5, or 7)
    slowfast_lateral_norm: bool = True        # lateral conv + BN + ReLU; MMAction2: the convolution alone
    slowfast_fast_pathway: bool = True        # False: the Slow pathway alone (MMAction2's SlowOnly, α = 1)
    slow_sampling: str = "stride"             # Slow frames 0, α, 2α... or PySlowFast's "linspace"
    # NL / SA keys on odd grids (SlowFast only): "ceil" (ours) or "floor" (PySlowFast's MaxPool3d).
    slowfast_pool: str = "ceil"
    # TimeSformer only (models/timesformer.py; the crop side is input_size): HF TimesformerConfig's fields.
    tsf_patch_size: Annotated[int, Field(ge=1, le=64)] = 16
    tsf_hidden_size: Annotated[int, Field(ge=1, le=4096)] = 768
    tsf_layers: Annotated[int, Field(ge=1, le=64)] = 12
    tsf_heads: Annotated[int, Field(ge=1, le=64)] = 12
    tsf_mlp_size: Annotated[int, Field(ge=1, le=16384)] = 3072
    tsf_eps: Annotated[float, Field(gt=0, le=1)] = 1e-6
    tsf_qkv_bias: bool = True
    video_resnet: str = "r3d_18"     # video_resnet only: one of models/video_resnet.ARCHITECTURES
    # MViT only (models/mvit.py): its blocks (None: mvit_v2_s's 16) and the (frames, side) its
    # relative-position tables are sized for.
    mvit_blocks: Annotated[tuple[MViTBlock, ...], Field(min_length=1, max_length=64)] | None = None
    mvit_trained_size: tuple[Annotated[int, Field(ge=2, le=256)], Annotated[int, Field(ge=16, le=2048)]] = MVIT_TRAINED_SIZE

    def __post_init__(self) -> None:
        if self.block != "none" and self.block not in BLOCK_BUILDERS:
            raise ValueError(f"unknown block {self.block!r}; choose one of {('none', *BLOCK_BUILDERS)}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; choose one of {BACKBONES}")
        if self.video_resnet not in VIDEO_RESNETS:
            raise ValueError(f"unknown video_resnet {self.video_resnet!r}; choose one of {VIDEO_RESNETS}")
        if self.backbone in IMPORTED_AS_IS and self.block != "none":
            raise ValueError(f"the {self.backbone} backbone is imported as it is; it takes no inserted blocks")
        if self.backbone != "r2d":
            step = self.frames_per_step()
            if self.depth != 50 or self.tsm:
                raise ValueError(f"the {self.backbone} backbone is built as ResNet-50 without TSM")
            if self.num_frames % step:
                raise ValueError(f"{self.backbone} needs a clip length divisible by {step}, got {self.num_frames}")
        if self.depth not in DEPTHS:
            raise ValueError(f"unknown depth {self.depth}; choose one of {sorted(DEPTHS)}")
        if self.num_frames < 1 or self.num_classes < 1:
            raise ValueError("num_frames and num_classes must be positive")
        if self.nl_pool not in POOL_PLACES:
            raise ValueError(f"unknown nl_pool {self.nl_pool!r}; choose one of {POOL_PLACES}")
        if self.nl_mode not in NL_MODES:
            raise ValueError(f"unknown nl_mode {self.nl_mode!r}; choose one of {NL_MODES}")
        if self.slow_sampling not in SLOW_SAMPLINGS:
            raise ValueError(f"unknown slow_sampling {self.slow_sampling!r}; choose one of {SLOW_SAMPLINGS}")
        if self.slowfast_pool not in SLOWFAST_POOLS:
            raise ValueError(f"unknown slowfast_pool {self.slowfast_pool!r}; choose one of {SLOWFAST_POOLS}")
        if self.slowfast_alpha < 1 or self.slowfast_fusion_kernel < 1 or self.slowfast_fusion_kernel % 2 == 0:
            raise ValueError("slowfast_alpha must be positive and slowfast_fusion_kernel a positive odd number")
        if self.sa_pool not in POOL_PLACES:
            raise ValueError(f"unknown sa_pool {self.sa_pool!r}; choose one of {POOL_PLACES}")
        counts = dict(zip(("res2", "res3", "res4", "res5"), DEPTHS[self.depth][1]))
        for stage, indices in self.block_positions or ():
            if stage not in counts or not all(0 <= i < counts[stage] for i in indices):
                raise ValueError(
                    f"block position {stage} {list(indices)} is outside R2D-{self.depth} "
                    f"(blocks per stage: {counts})"
                )

    def frames_per_step(self) -> int:
        """Input frames per time step of the blocks' stages (1 for R2D)."""
        if self.backbone == "slowfast":
            return self.slowfast_alpha
        if self.backbone == "video_resnet":
            return 1 if self.video_resnet == "mc3_18" else 8     # layer4's temporal stride
        return FRAMES_PER_STEP.get(self.backbone, 1)

    def pool_ceil(self, ceil: bool = True) -> bool:
        """Key pooling rounding of a block: `ceil` unless SlowFast's `slowfast_pool` is "floor"."""
        return ceil and not (self.backbone == "slowfast" and self.slowfast_pool == "floor")

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
        # Types and the bounds declared on the fields (JSON lists become tuples); __post_init__ runs after.
        return validate(cls, values)


def _block_factory(config: VideoNetConfig):
    if config.block == "none":
        return lambda channels, steps: None
    build = BLOCK_BUILDERS[config.block]     # registered beside each block (layers/protocol.py)
    return lambda channels, steps: build(config, channels, steps)


def _make_backbone(config: VideoNetConfig) -> nn.Module:
    common = dict(
        width_multiplier=config.width_multiplier,
        num_frames=config.num_frames,
        insert_after=config.insert_after(),
        make_block=_block_factory(config),
    )
    if config.backbone == "i3d":
        return ResNet3D(inflate=config.inflate or I3D_INFLATE, **common)
    if config.backbone == "video_resnet":
        return VideoResNet(config.video_resnet, config.num_frames)
    if config.backbone == "s3d":
        return S3D(config.num_frames)
    if config.backbone == "mvit":
        return MViT(config.num_frames, config.mvit_blocks or V2_S_BLOCKS, config.mvit_trained_size)
    if config.backbone == "timesformer":
        return TimeSformer(
            config.num_frames, config.input_size, config.tsf_patch_size, config.tsf_hidden_size, config.tsf_layers,
            config.tsf_heads, config.tsf_mlp_size, config.tsf_eps, config.tsf_qkv_bias,
        )
    if config.backbone == "slowfast":
        return SlowFast(
            alpha=config.slowfast_alpha, fusion_kernel=config.slowfast_fusion_kernel,
            lateral_norm=config.slowfast_lateral_norm, slow_sampling=config.slow_sampling,
            fast_pathway=config.slowfast_fast_pathway, **common,
        )
    return ResNet2D(depth=config.depth, tsm=config.tsm, **common)


class VideoNet(nn.Module):
    """Clip (B, 3, T, H, W) -> logits (B, num_classes).

    R2D folds frames into the batch and averages per-frame logits (TSN
    consensus); the 3D backbones return one feature map per pathway, each
    averaged over space-time, concatenated and classified (I3D's and
    SlowFast's heads). Both heads are linear after pooling, so in eval mode
    they compute the same function of the features.
    """

    def __init__(self, config: VideoNetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = _make_backbone(config)
        channels = self.backbone.out_channels
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(sum(channels) if isinstance(channels, tuple) else channels, config.num_classes)

    @property
    def is_3d(self) -> bool:
        return self.config.backbone != "r2d"

    def forward_features(self, clip: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, 3, T, H, W) -> R2D: per-frame features (B·T, C, h, w); 3D: [(B, C, T', h, w) per pathway]."""
        if clip.dim() != 5 or clip.shape[1] != 3:
            raise ValueError(f"expected a clip of shape (B, 3, T, H, W), got {tuple(clip.shape)}")
        if clip.shape[2] != self.config.num_frames:
            raise ValueError(
                f"this model runs on exactly {self.config.num_frames} frames, got {clip.shape[2]}"
            )
        if self.is_3d:
            return self.backbone(clip)
        return self.backbone(rearrange(clip, "b c t h w -> (b t) c h w"))

    def forward_head(self, features, pre_logits: bool = False) -> torch.Tensor:
        """Logits (B, N), or with `pre_logits` the pooled features (B, C) the classifier sees."""
        if self.is_3d:
            pooled = torch.cat([f.mean(dim=(2, 3, 4)) for f in features], dim=1)      # (B, ΣC)
            return pooled if pre_logits else self.head(self.dropout(pooled))
        pooled = features.mean(dim=(2, 3))                      # (B·T, C)
        if pre_logits:
            return rearrange(pooled, "(b t) c -> b t c", t=self.config.num_frames).mean(dim=1)
        frame_logits = self.head(self.dropout(pooled))          # (B·T, N)
        return rearrange(frame_logits, "(b t) n -> b t n", t=self.config.num_frames).mean(dim=1)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(clip))

    def resume_context(self, clip: torch.Tensor):
        """What `forward_from_block` needs besides the block's input: SlowFast's Fast features, else None."""
        return self.backbone.fast_features(clip) if self.config.backbone == "slowfast" else None

    def forward_from_block(self, name: str, block_input: torch.Tensor, context=None) -> torch.Tensor:
        """Logits when block `name` receives `block_input` (B·T', C, H, W), skipping what comes before.

        A sweep that changes only this block and what follows (knockouts)
        computes the prefix once. SlowFast's later laterals read the Fast
        pathway: pass `context` = `resume_context(clip)` (or the clip itself).
        """
        if self.config.backbone == "slowfast":
            if context is None:
                raise ValueError("SlowFast's forward_from_block needs resume_context(clip) (the Fast pathway)")
            fast = self.resume_context(context) if isinstance(context, torch.Tensor) else context
            return self.forward_head(self.backbone.forward_from_block(name, block_input, fast))
        return self.forward_head(self.backbone.forward_from_block(name, block_input))

    def temporal_blocks(self) -> dict[str, nn.Module]:
        """Inserted blocks (layers.AttentionBlock) by readable name, e.g. {"res3.1": NonLocalBlock, ...} ("slow.res3.1" on SlowFast)."""
        return {name: unit.attention for name, unit in self.backbone.named_units() if unit.attention is not None}

    def time_spans(self, name: str) -> tuple[tuple[int, int], ...]:
        """For block `name`: the [start, stop) input frames each of its time steps stands for."""
        return self.backbone.time_spans(name)
