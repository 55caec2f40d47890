from .registry import create_model, list_models, model_config, model_source, register_model
from .resnet2d import ResNet2D, temporal_shift
from .video_net import BLOCK_KINDS, VideoNet, VideoNetConfig

__all__ = [
    "BLOCK_KINDS",
    "ResNet2D",
    "VideoNet",
    "VideoNetConfig",
    "create_model",
    "list_models",
    "model_config",
    "model_source",
    "register_model",
    "temporal_shift",
]
