"""MMAction2's own models, built from the registry package, as the importers' oracle.

The mmaction2 1.2.0 wheel lacks `mmaction.models.localizers.drn`; an empty
module takes its place before importing (the DRN localizer is never used).
With transformers installed, mmaction turns on its multimodal models, which
import timm (not installed); they are never used here, so the switch is off.
Its data pipeline (`mmaction.datasets.transforms`) imports scipy for the pose
transforms only; without scipy installed a stub stands in (`pipeline()`), and
any use of it raises.
"""
from __future__ import annotations

import sys
import types
import warnings

import torch

from tests.helpers import calibrate_norms


def _stub_missing_drn() -> None:
    package = types.ModuleType("mmaction.models.localizers.drn")
    package.__path__ = []
    module = types.ModuleType("mmaction.models.localizers.drn.drn")
    module.DRN = type("DRN", (), {})
    sys.modules.setdefault(package.__name__, package)
    sys.modules.setdefault(module.__name__, module)


def _stub_missing_scipy() -> None:
    import importlib.util

    if "scipy" in sys.modules or importlib.util.find_spec("scipy") is not None:
        return

    def unavailable(*args, **kwargs):
        raise RuntimeError("scipy is not installed; the stub only lets mmaction's pose transforms import")

    scipy = types.ModuleType("scipy")
    scipy.__version__ = "1.11.0"
    stats = types.ModuleType("scipy.stats")
    stats.mode = unavailable
    scipy.stats = stats
    sys.modules.setdefault("scipy", scipy)
    sys.modules.setdefault("scipy.stats", stats)


def pipeline(steps: list[dict]):
    """MMAction2's own data pipeline (mmengine's Compose over its TRANSFORMS registry)."""
    registry()
    _stub_missing_scipy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmaction.datasets.transforms  # noqa: F401  (registers the transforms)
        from mmengine.dataset import Compose
    return Compose(steps)


def registry():
    """MMAction2's MODELS registry, with the default scope set."""
    _stub_missing_drn()
    import mmaction.utils.dependency as dependency

    dependency.WITH_MULTIMODAL = False  # read by mmaction.models.multimodal when it is first imported
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmaction.models  # noqa: F401  (registers the models)
        from mmaction.registry import MODELS
        from mmengine.registry import init_default_scope
    init_default_scope("mmaction")
    return MODELS


# The published TSM-R50 (+ NL) Kinetics-400 configs (configs/recognition/tsm/).
NL_CFG = dict(sub_sample=True, use_scale=False, norm_cfg=dict(type="BN3d", requires_grad=True), mode="embedded_gaussian")
NL_POSITIONS = ((0, 0, 0), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 0, 0))


def tsm_r50(num_classes: int, frames: int, non_local: bool):
    backbone = dict(type="ResNetTSM", pretrained=None, pretrained2d=False, depth=50, norm_eval=False,
                    shift_div=8, num_segments=frames)
    if non_local:
        backbone.update(non_local=NL_POSITIONS, non_local_cfg=NL_CFG)
    config = dict(
        type="Recognizer2D",
        backbone=backbone,
        cls_head=dict(type="TSMHead", num_classes=num_classes, in_channels=2048, spatial_type="avg",
                      consensus=dict(type="AvgConsensus", dim=1), dropout_ratio=0.5, init_std=0.001,
                      is_shift=True, average_clips="prob", num_segments=frames),
        data_preprocessor=dict(type="ActionDataPreprocessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], format_shape="NCHW"),
    )
    return _randomised(registry().build(config))


# MMAction2's configs/_base_/models/i3d_r50.py backbone (random init instead of inflated ImageNet weights)
# and the non-local placement of its I3D-R50-NL Kinetics-400 configs (recognition/i3d/*-nl-*.py).
I3D_BACKBONE = dict(type="ResNet3d", pretrained2d=False, pretrained=None, depth=50, conv1_kernel=(5, 7, 7),
                    conv1_stride_t=2, pool1_stride_t=2, conv_cfg=dict(type="Conv3d"), norm_eval=False,
                    inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)), zero_init_residual=False)
I3D_NL_POSITIONS = ((0, 0, 0), (0, 1, 0, 1), (0, 1, 0, 1, 0, 1), (0, 0, 0))


def i3d_r50_config(num_classes: int, non_local: bool, nl_mode: str = "embedded_gaussian", **backbone_overrides) -> dict:
    """The `model` of MMAction2's I3D-R50(-NL) Kinetics-400 configs (i3d_r50.py, random init); its
    NonLocal3d blocks (mmcv's) in `nl_mode`."""
    backbone = {**I3D_BACKBONE, **backbone_overrides}
    if non_local:
        backbone.update(non_local=I3D_NL_POSITIONS, non_local_cfg={**NL_CFG, "mode": nl_mode})
    return dict(
        type="Recognizer3D",
        backbone=backbone,
        cls_head=dict(type="I3DHead", num_classes=num_classes, in_channels=32 * backbone.get("base_channels", 64),
                      spatial_type="avg",
                      dropout_ratio=0.5, init_std=0.01, average_clips="prob"),
        data_preprocessor=dict(type="ActionDataPreprocessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], format_shape="NCTHW"),
    )


def i3d_r50(
    num_classes: int, non_local: bool, config: dict | None = None, nl_mode: str = "embedded_gaussian",
    calibration_size: int = 112, **backbone_overrides,
):
    """MMAction2's Recognizer3D with ResNet3d (i3d_r50.py) and I3DHead, random weights and BN statistics."""
    config = config or i3d_r50_config(num_classes, non_local, nl_mode, **backbone_overrides)
    torch.manual_seed(0)          # ResNet3d's Kaiming init draws from the global generator
    model = _randomised(registry().build(config))
    # Statistics measured on a clip, then random around them (tests/helpers.py says why), NL γ included.
    calibration = torch.randn(2, 3, 16, calibration_size, calibration_size, generator=torch.Generator().manual_seed(1))
    calibrate_norms(model.backbone, calibration)
    return model


def logits_3d(model, clip: torch.Tensor) -> torch.Tensor:
    """A Recognizer3D's class scores (I3DHead, before clip averaging) for a normalised clip (B, 3, T, H, W)."""
    with torch.no_grad():
        return model.cls_head(model.backbone(clip))


def resnet50_torchvision_pretrained(path: str):
    """MMAction2's ResNet-50 loading a torchvision-layout file with its own loader."""
    model = registry().build(dict(type="ResNet", depth=50, pretrained=path, torchvision_pretrain=True))
    model.init_weights()
    model.eval()  # MMAction2's ResNet.train() returns None, so no chaining
    return model


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights and random BatchNorm statistics everywhere (non-local γ included)."""
    generator = torch.Generator().manual_seed(0)
    model.init_weights()
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)) and module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.05)
            if isinstance(module, torch.nn.Conv3d) and ".non_local_block." in name:
                # mmcv initialises θ, φ, g with std 0.01, which leaves the NL softmax nearly uniform;
                # unit-scale projections make it peaked, so the NL maths (scale, pooling) shows in the logits.
                # (The backbone's own Conv3d, in I3D, keep ResNet3d's Kaiming init: features of unit scale.)
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.5 / fan_in**0.5)
    model.eval()
    return model


def logits(model, clip: torch.Tensor) -> torch.Tensor:
    """MMAction2's class scores (before the test-time softmax) for a normalised clip (B, 3, T, H, W)."""
    batch, _, frames = clip.shape[:3]
    flat = clip.permute(0, 2, 1, 3, 4).reshape(batch * frames, *clip.shape[1:2], *clip.shape[3:])
    with torch.no_grad():
        return model.cls_head(model.backbone(flat), num_segs=frames)


def save_as_published(model, path: str, config_text: str) -> None:
    """`torch.save({'meta': ..., 'state_dict': ...})` as MMAction2 publishes, mmengine objects in meta included."""
    from mmengine.config import ConfigDict
    import numpy as np

    meta = {
        "mmengine_version": "0.10.7",
        "cfg": config_text,
        "dataset_meta": ConfigDict(classes=None),
        "seed": np.int64(0),
        "epoch": 50,
    }
    torch.save({"meta": meta, "state_dict": model.state_dict()}, path)


# configs/_base_/models/slowfast_r50.py and the two Kinetics-400 recipes of configs/recognition/slowfast/:
# 4x16x1 (τ = α = 8, fusion kernel 5, the pathway default) and 8x8x1 (τ = α = 4, fusion kernel 7).
SLOWFAST_RECIPES = {"4x16x1": dict(alpha=8, fusion_kernel=5), "8x8x1": dict(alpha=4, fusion_kernel=7)}


def slowfast_r50(num_classes: int, alpha: int, fusion_kernel: int, base_channels: int = 64, non_local=None):
    """MMAction2's Recognizer3D with ResNet3dSlowFast and SlowFastHead; `base_channels` is the Slow pathway's
    (the Fast pathway's is base_channels / channel_ratio 8, as 64 and 8 in the published config). `non_local`:
    NonLocal3d positions in the Slow pathway (ResNet3d's `non_local`; MMAction2 publishes none)."""
    slow = dict(type="resnet3d", depth=50, pretrained=None, lateral=True, conv1_kernel=(1, 7, 7),
                dilations=(1, 1, 1, 1), conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1), norm_eval=False,
                fusion_kernel=fusion_kernel, base_channels=base_channels)
    if non_local is not None:
        slow.update(non_local=non_local, non_local_cfg=NL_CFG)
    fast = dict(type="resnet3d", depth=50, pretrained=None, lateral=False, base_channels=base_channels // 8,
                conv1_kernel=(5, 7, 7), conv1_stride_t=1, pool1_stride_t=1, norm_eval=False)
    config = dict(
        type="Recognizer3D",
        backbone=dict(type="ResNet3dSlowFast", pretrained=None, resample_rate=alpha, speed_ratio=alpha,
                      channel_ratio=8, slow_pathway=slow, fast_pathway=fast),
        cls_head=dict(type="SlowFastHead", in_channels=36 * base_channels, num_classes=num_classes,  # 2048 + 256
                      spatial_type="avg", dropout_ratio=0.5, average_clips="prob"),
        data_preprocessor=dict(type="ActionDataPreprocessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], format_shape="NCTHW"),
    )
    return _calibrated(config)


def slowonly_r50(num_classes: int, base_channels: int = 64):
    """MMAction2's SlowOnly-R50 (configs/_base_/models/slowonly_r50.py): ResNet3dSlowOnly + I3DHead."""
    config = dict(
        type="Recognizer3D",
        backbone=dict(type="ResNet3dSlowOnly", depth=50, pretrained=None, lateral=False, conv1_kernel=(1, 7, 7),
                      conv1_stride_t=1, pool1_stride_t=1, inflate=(0, 0, 1, 1), norm_eval=False,
                      base_channels=base_channels),
        cls_head=dict(type="I3DHead", in_channels=32 * base_channels, num_classes=num_classes, spatial_type="avg",
                      dropout_ratio=0.5, average_clips="prob"),
        data_preprocessor=dict(type="ActionDataPreprocessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], format_shape="NCTHW"),
    )
    return _calibrated(config)


def _calibrated(config: dict):
    """Built with random weights, BatchNorm statistics random around those of a calibration clip."""
    torch.manual_seed(0)
    model = _randomised(registry().build(config))
    calibration = torch.randn(2, 3, 16, 112, 112, generator=torch.Generator().manual_seed(1))
    calibrate_norms(model.backbone, calibration)
    return model
