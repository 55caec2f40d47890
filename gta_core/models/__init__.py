from .resnet2d import ResNet2D, temporal_shift
from .video_net import (
    BLOCK_KINDS,
    VideoNet,
    VideoNetConfig,
    create_model,
    list_models,
    model_config,
    register_model,
)

__all__ = [
    "BLOCK_KINDS",
    "ResNet2D",
    "VideoNet",
    "VideoNetConfig",
    "create_model",
    "list_models",
    "model_config",
    "register_model",
    "temporal_shift",
]
