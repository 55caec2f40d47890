"""GTA Lens core: the GTA paper's blocks, R2D models, capture, checkpoints, data."""
from .records import Capture, capture, swapped_projections
from .checkpoint import Checkpoint, CheckpointConfig, CheckpointError, load_checkpoint, save_checkpoint
from .models import VideoNet, VideoNetConfig, create_model, list_models, model_config, register_model

__all__ = [
    "Capture",
    "Checkpoint",
    "CheckpointConfig",
    "CheckpointError",
    "VideoNet",
    "VideoNetConfig",
    "capture",
    "create_model",
    "list_models",
    "load_checkpoint",
    "model_config",
    "register_model",
    "save_checkpoint",
    "swapped_projections",
]
