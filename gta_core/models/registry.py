"""The model registry: each named variant is a small function returning its `VideoNetConfig`.

As in timm, `@register_model` files a function under its own name, and its
docstring says where the variant comes from (a table of the paper, a peer's
model zoo, or "not in the paper"). `create_model("r2d50_gta")` is the whole
story; keyword overrides change any field
(`create_model("r2d50_gta", num_classes=10, gta_groups=4)`).
"""
from __future__ import annotations

from collections.abc import Callable

from .video_net import VideoNet, VideoNetConfig

ConfigFn = Callable[..., VideoNetConfig]
_REGISTRY: dict[str, ConfigFn] = {}


def register_model(fn: ConfigFn) -> ConfigFn:
    """Decorator: register `fn(**overrides) -> VideoNetConfig` under `fn.__name__`."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} is already registered")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Every registered variant name, sorted (`gta-lens models` prints them with their costs)."""
    return sorted(_REGISTRY)


def _entry(name: str) -> ConfigFn:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _REGISTRY[name]


def model_config(name: str, **overrides) -> VideoNetConfig:
    """The VideoNetConfig of variant `name`, with `overrides` (any VideoNetConfig field) applied."""
    return _entry(name)(**overrides)


def model_source(name: str) -> str:
    """Where variant `name` comes from: the first line of its function's docstring."""
    return (_entry(name).__doc__ or "").strip().splitlines()[0]


def create_model(name: str, **overrides) -> VideoNet:
    """A freshly initialised model of variant `name`, e.g. create_model("r2d50_gta", num_classes=400).

    Every attention block starts as the identity (zero-init BatchNorm γ).
    """
    return VideoNet(model_config(name, **overrides))


def _config(overrides: dict, **fields) -> VideoNetConfig:
    """The variant's `fields` over `VideoNetConfig`'s defaults, then the caller's overrides (JSON lists allowed)."""
    return VideoNetConfig.from_dict({**fields, **overrides})


# Fields shared by a family of variants.
_SLOWFAST = dict(backbone="slowfast", num_frames=64, input_size=256, nl_pool="before", sa_pool="before")
_I3D = dict(backbone="i3d", num_frames=32, num_classes=400)
_MMACTION2_NL = dict(nl_scale=False, nl_pool_ceil=False, nl_out_bias=False)
_DEMO = dict(depth=18, width_multiplier=0.25, gta_groups=4)
_DEMO_SLOWFAST = dict(_SLOWFAST, width_multiplier=0.25, num_frames=32, input_size=112, gta_groups=4)


# ------------------------------------------------------------------ R2D-50: Table 1 (2D rows), Table 6
# Tables 4, 8, 10, 11 and Fig. 4 ablate r2d50_gta through its gta_* and block_* fields.


@register_model
def r2d50(**overrides) -> VideoNetConfig:
    """R2D-50: Table 1, 2D rows, and Table 6's baseline (23.9 M, 32.7 G at 8×224²)."""
    return _config(overrides)


@register_model
def r2d50_nl(**overrides) -> VideoNetConfig:
    """R2D-50 + NL: Table 1, 2D rows (31.2 M, 61.1 G at 8×224²); Table 2 on Kinetics-400."""
    return _config(overrides, block="nl")


@register_model
def r2d50_sa(**overrides) -> VideoNetConfig:
    """R2D-50 + SA: Table 6 (27.5 M, 41.7 G at 8×224²)."""
    return _config(overrides, block="sa")


@register_model
def r2d50_ta(**overrides) -> VideoNetConfig:
    """R2D-50 + TA: Table 6 (27.5 M, 41.0 G at 8×224²)."""
    return _config(overrides, block="ta")


@register_model
def r2d50_dnl(**overrides) -> VideoNetConfig:
    """R2D-50 + DNL: Table 1, 2D rows, and Table 6's + SA + TA (31.2 M, 49.9 G at 8×224²)."""
    return _config(overrides, block="dnl")


@register_model
def r2d50_tape(**overrides) -> VideoNetConfig:
    """R2D-50 + SA + TAPE: Table 6 (31.2 M, 49.9 G at 8×224²) and Table 9, without CCMH."""
    return _config(overrides, block="tape")


@register_model
def r2d50_gta(**overrides) -> VideoNetConfig:
    """R2D-50 + GTA: Table 1, 2D rows (31.2 M, 50.2 G at 8×224²) and Table 6; Table 2 on Kinetics-400."""
    return _config(overrides, block="gta")


# ------------------------------------------------------------------ R2D-50 + TSM: Table 3 / Table 7
# The paper puts GTA alone on this backbone; the other blocks are here for symmetry.


@register_model
def r2d50_tsm(**overrides) -> VideoNetConfig:
    """R2D-50 + TSM: the backbone of Table 3 / Table 7's GTA rows (TSM alone: cited there, not trained)."""
    return _config(overrides, tsm=True)


@register_model
def r2d50_tsm_nl(**overrides) -> VideoNetConfig:
    """R2D-50 + TSM + NL: not in the paper."""
    return _config(overrides, block="nl", tsm=True)


@register_model
def r2d50_tsm_sa(**overrides) -> VideoNetConfig:
    """R2D-50 + TSM + SA: not in the paper."""
    return _config(overrides, block="sa", tsm=True)


@register_model
def r2d50_tsm_ta(**overrides) -> VideoNetConfig:
    """R2D-50 + TSM + TA: not in the paper."""
    return _config(overrides, block="ta", tsm=True)


@register_model
def r2d50_tsm_dnl(**overrides) -> VideoNetConfig:
    """R2D-50 + TSM + DNL: not in the paper."""
    return _config(overrides, block="dnl", tsm=True)


@register_model
def r2d50_tsm_tape(**overrides) -> VideoNetConfig:
    """R2D-50 + TSM + SA + TAPE: not in the paper."""
    return _config(overrides, block="tape", tsm=True)


@register_model
def r2d50_tsm_gta(**overrides) -> VideoNetConfig:
    """R2D-50 + TSM + GTA: Table 3 / Table 7."""
    return _config(overrides, block="gta", tsm=True)


# ------------------------------------------------------------------ R2D-18 and R2D-34: not in the paper
# The paper uses R2D-50 only; these are the same models on smaller backbones, for quick runs.


@register_model
def r2d18(**overrides) -> VideoNetConfig:
    """R2D-18: not in the paper."""
    return _config(overrides, depth=18)


@register_model
def r2d18_nl(**overrides) -> VideoNetConfig:
    """R2D-18 + NL: not in the paper."""
    return _config(overrides, depth=18, block="nl")


@register_model
def r2d18_sa(**overrides) -> VideoNetConfig:
    """R2D-18 + SA: not in the paper."""
    return _config(overrides, depth=18, block="sa")


@register_model
def r2d18_ta(**overrides) -> VideoNetConfig:
    """R2D-18 + TA: not in the paper."""
    return _config(overrides, depth=18, block="ta")


@register_model
def r2d18_dnl(**overrides) -> VideoNetConfig:
    """R2D-18 + DNL: not in the paper."""
    return _config(overrides, depth=18, block="dnl")


@register_model
def r2d18_tape(**overrides) -> VideoNetConfig:
    """R2D-18 + SA + TAPE: not in the paper."""
    return _config(overrides, depth=18, block="tape")


@register_model
def r2d18_gta(**overrides) -> VideoNetConfig:
    """R2D-18 + GTA: not in the paper."""
    return _config(overrides, depth=18, block="gta")


@register_model
def r2d18_tsm(**overrides) -> VideoNetConfig:
    """R2D-18 + TSM: not in the paper."""
    return _config(overrides, depth=18, tsm=True)


@register_model
def r2d18_tsm_nl(**overrides) -> VideoNetConfig:
    """R2D-18 + TSM + NL: not in the paper."""
    return _config(overrides, depth=18, block="nl", tsm=True)


@register_model
def r2d18_tsm_sa(**overrides) -> VideoNetConfig:
    """R2D-18 + TSM + SA: not in the paper."""
    return _config(overrides, depth=18, block="sa", tsm=True)


@register_model
def r2d18_tsm_ta(**overrides) -> VideoNetConfig:
    """R2D-18 + TSM + TA: not in the paper."""
    return _config(overrides, depth=18, block="ta", tsm=True)


@register_model
def r2d18_tsm_dnl(**overrides) -> VideoNetConfig:
    """R2D-18 + TSM + DNL: not in the paper."""
    return _config(overrides, depth=18, block="dnl", tsm=True)


@register_model
def r2d18_tsm_tape(**overrides) -> VideoNetConfig:
    """R2D-18 + TSM + SA + TAPE: not in the paper."""
    return _config(overrides, depth=18, block="tape", tsm=True)


@register_model
def r2d18_tsm_gta(**overrides) -> VideoNetConfig:
    """R2D-18 + TSM + GTA: not in the paper."""
    return _config(overrides, depth=18, block="gta", tsm=True)


@register_model
def r2d34(**overrides) -> VideoNetConfig:
    """R2D-34: not in the paper."""
    return _config(overrides, depth=34)


@register_model
def r2d34_nl(**overrides) -> VideoNetConfig:
    """R2D-34 + NL: not in the paper."""
    return _config(overrides, depth=34, block="nl")


@register_model
def r2d34_sa(**overrides) -> VideoNetConfig:
    """R2D-34 + SA: not in the paper."""
    return _config(overrides, depth=34, block="sa")


@register_model
def r2d34_ta(**overrides) -> VideoNetConfig:
    """R2D-34 + TA: not in the paper."""
    return _config(overrides, depth=34, block="ta")


@register_model
def r2d34_dnl(**overrides) -> VideoNetConfig:
    """R2D-34 + DNL: not in the paper."""
    return _config(overrides, depth=34, block="dnl")


@register_model
def r2d34_tape(**overrides) -> VideoNetConfig:
    """R2D-34 + SA + TAPE: not in the paper."""
    return _config(overrides, depth=34, block="tape")


@register_model
def r2d34_gta(**overrides) -> VideoNetConfig:
    """R2D-34 + GTA: not in the paper."""
    return _config(overrides, depth=34, block="gta")


@register_model
def r2d34_tsm(**overrides) -> VideoNetConfig:
    """R2D-34 + TSM: not in the paper."""
    return _config(overrides, depth=34, tsm=True)


@register_model
def r2d34_tsm_nl(**overrides) -> VideoNetConfig:
    """R2D-34 + TSM + NL: not in the paper."""
    return _config(overrides, depth=34, block="nl", tsm=True)


@register_model
def r2d34_tsm_sa(**overrides) -> VideoNetConfig:
    """R2D-34 + TSM + SA: not in the paper."""
    return _config(overrides, depth=34, block="sa", tsm=True)


@register_model
def r2d34_tsm_ta(**overrides) -> VideoNetConfig:
    """R2D-34 + TSM + TA: not in the paper."""
    return _config(overrides, depth=34, block="ta", tsm=True)


@register_model
def r2d34_tsm_dnl(**overrides) -> VideoNetConfig:
    """R2D-34 + TSM + DNL: not in the paper."""
    return _config(overrides, depth=34, block="dnl", tsm=True)


@register_model
def r2d34_tsm_tape(**overrides) -> VideoNetConfig:
    """R2D-34 + TSM + SA + TAPE: not in the paper."""
    return _config(overrides, depth=34, block="tape", tsm=True)


@register_model
def r2d34_tsm_gta(**overrides) -> VideoNetConfig:
    """R2D-34 + TSM + GTA: not in the paper."""
    return _config(overrides, depth=34, block="gta", tsm=True)


# ------------------------------------------------------------------ SlowFast-R50: Table 1 (3D rows)
# SlowFast-R50 16×8 (64 frames, the Slow pathway every 4th) at 256², PySlowFast's SSv2 setting, blocks on
# the Slow pathway. Keys and values are pooled *before* their projections as in PySlowFast's Nonlocal, for
# NL and for SA: with these, 131.4 G, 239.9 G (NL) and 169.1 G (DNL) come out exactly (README, Table 1).


@register_model
def slowfast_r50(**overrides) -> VideoNetConfig:
    """SlowFast-R50 16×8: Table 1, 3D rows (34.0 M, 131.4 G at 64×256²)."""
    return _config(overrides, **_SLOWFAST)


@register_model
def slowfast_r50_nl(**overrides) -> VideoNetConfig:
    """SlowFast-R50 + NL: Table 1, 3D rows (41.4 M, 239.9 G at 64×256²)."""
    return _config(overrides, **_SLOWFAST, block="nl")


@register_model
def slowfast_r50_sa(**overrides) -> VideoNetConfig:
    """SlowFast-R50 + SA: not in the paper (Table 6's block on the 3D backbone)."""
    return _config(overrides, **_SLOWFAST, block="sa")


@register_model
def slowfast_r50_ta(**overrides) -> VideoNetConfig:
    """SlowFast-R50 + TA: not in the paper (Table 6's block on the 3D backbone)."""
    return _config(overrides, **_SLOWFAST, block="ta")


@register_model
def slowfast_r50_dnl(**overrides) -> VideoNetConfig:
    """SlowFast-R50 + DNL: Table 1, 3D rows (41.4 M, 169.1 G at 64×256²)."""
    return _config(overrides, **_SLOWFAST, block="dnl")


@register_model
def slowfast_r50_tape(**overrides) -> VideoNetConfig:
    """SlowFast-R50 + SA + TAPE: not in the paper (Table 6's block on the 3D backbone)."""
    return _config(overrides, **_SLOWFAST, block="tape")


@register_model
def slowfast_r50_gta(**overrides) -> VideoNetConfig:
    """SlowFast-R50 + GTA: Table 1, 3D rows (41.4 M, 169.9 G at 64×256²)."""
    return _config(overrides, **_SLOWFAST, block="gta")


# ------------------------------------------------------------------ I3D-R50: MMAction2's, not in the paper
# Kinetics-400 (400 classes), 32 frames. Its NL is the embedded Gaussian without 1/√C', floor pooling and
# no W^O bias; Kinetics-400 top-1 from MMAction2's model zoo (configs/recognition/i3d/README.md).


@register_model
def i3d_r50(**overrides) -> VideoNetConfig:
    """I3D-R50: MMAction2's i3d_imagenet-pretrained-r50 (Kinetics-400 73.5%); not in the paper."""
    return _config(overrides, **_I3D)


@register_model
def i3d_r50_nl(**overrides) -> VideoNetConfig:
    """I3D-R50 + NL: MMAction2's i3d_imagenet-pretrained-r50-nl-embedded-gaussian (Kinetics-400 74.7%)."""
    return _config(overrides, **_I3D, block="nl", **_MMACTION2_NL)


# ------------------------------------------------------------------ CPU demos: not in the paper
# R2D-18 at a quarter of the width (the shipped checkpoints are demo_r2d18{,_nl,_dnl,_tape,_gta}), and
# SlowFast-R50 at a quarter of the width, 32 frames (8 Slow steps), 112², for the app and the tests.


@register_model
def demo_r2d18(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25: CPU demo (the shipped checkpoints), not in the paper."""
    return _config(overrides, **_DEMO)


@register_model
def demo_r2d18_nl(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + NL: CPU demo (the shipped checkpoints), not in the paper."""
    return _config(overrides, **_DEMO, block="nl")


@register_model
def demo_r2d18_sa(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + SA: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, block="sa")


@register_model
def demo_r2d18_ta(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + TA: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, block="ta")


@register_model
def demo_r2d18_dnl(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + DNL: CPU demo (the shipped checkpoints), not in the paper."""
    return _config(overrides, **_DEMO, block="dnl")


@register_model
def demo_r2d18_tape(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + SA + TAPE: CPU demo (the shipped checkpoints), not in the paper."""
    return _config(overrides, **_DEMO, block="tape")


@register_model
def demo_r2d18_gta(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + GTA: CPU demo (the shipped checkpoints), not in the paper."""
    return _config(overrides, **_DEMO, block="gta")


@register_model
def demo_r2d18_tsm(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + TSM: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, tsm=True)


@register_model
def demo_r2d18_tsm_nl(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + TSM + NL: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, block="nl", tsm=True)


@register_model
def demo_r2d18_tsm_sa(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + TSM + SA: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, block="sa", tsm=True)


@register_model
def demo_r2d18_tsm_ta(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + TSM + TA: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, block="ta", tsm=True)


@register_model
def demo_r2d18_tsm_dnl(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + TSM + DNL: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, block="dnl", tsm=True)


@register_model
def demo_r2d18_tsm_tape(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + TSM + SA + TAPE: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, block="tape", tsm=True)


@register_model
def demo_r2d18_tsm_gta(**overrides) -> VideoNetConfig:
    """R2D-18 ×0.25 + TSM + GTA: CPU demo, not in the paper."""
    return _config(overrides, **_DEMO, block="gta", tsm=True)


@register_model
def demo_slowfast_r50(**overrides) -> VideoNetConfig:
    """SlowFast-R50 ×0.25: CPU demo of the 3D backbone, not in the paper."""
    return _config(overrides, **_DEMO_SLOWFAST)


@register_model
def demo_slowfast_r50_nl(**overrides) -> VideoNetConfig:
    """SlowFast-R50 ×0.25 + NL: CPU demo of the 3D backbone, not in the paper."""
    return _config(overrides, **_DEMO_SLOWFAST, block="nl")


@register_model
def demo_slowfast_r50_sa(**overrides) -> VideoNetConfig:
    """SlowFast-R50 ×0.25 + SA: CPU demo of the 3D backbone, not in the paper."""
    return _config(overrides, **_DEMO_SLOWFAST, block="sa")


@register_model
def demo_slowfast_r50_ta(**overrides) -> VideoNetConfig:
    """SlowFast-R50 ×0.25 + TA: CPU demo of the 3D backbone, not in the paper."""
    return _config(overrides, **_DEMO_SLOWFAST, block="ta")


@register_model
def demo_slowfast_r50_dnl(**overrides) -> VideoNetConfig:
    """SlowFast-R50 ×0.25 + DNL: CPU demo of the 3D backbone, not in the paper."""
    return _config(overrides, **_DEMO_SLOWFAST, block="dnl")


@register_model
def demo_slowfast_r50_tape(**overrides) -> VideoNetConfig:
    """SlowFast-R50 ×0.25 + SA + TAPE: CPU demo of the 3D backbone, not in the paper."""
    return _config(overrides, **_DEMO_SLOWFAST, block="tape")


@register_model
def demo_slowfast_r50_gta(**overrides) -> VideoNetConfig:
    """SlowFast-R50 ×0.25 + GTA: CPU demo of the 3D backbone, not in the paper."""
    return _config(overrides, **_DEMO_SLOWFAST, block="gta")
