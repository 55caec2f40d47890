"""GTA Lens core: the GTA paper's blocks, video models, capture, checkpoints, data.

A video file to predictions or attention records, in one call each:

    import gta_core
    gta_core.predict(folder, video)    # Prediction: top-k with class names
    gta_core.lens(folder, video)       # Capture: logits + a record per attention block
    gta_core.compare([a, b], data)     # several checkpoints on a dataset split, clip by clip

`folder` is a checkpoint folder (config.json + model.safetensors), a loaded
Checkpoint or a model from `create_model`. Lower level: `read_clip(video,
ClipSpec(...))` gives the normalised clip tensor, `capture(model, clip)` the
records of any clip.
"""
from .api import ClassScore, Prediction, ViewScore, compare, lens, predict
from .bundle import assets_dir, checkpoints_dir, sample_video
from .checkpoint import Checkpoint, CheckpointConfig, CheckpointError, load_checkpoint, save_checkpoint
from .models import VideoNet, VideoNetConfig, create_model, list_models, model_config, register_model
from .records import Capture, capture, swapped_projections
from .video import Clip, ClipSpec, VideoError, read_clip

__all__ = [
    "Capture",
    "Checkpoint",
    "CheckpointConfig",
    "CheckpointError",
    "ClassScore",
    "Clip",
    "ClipSpec",
    "Prediction",
    "VideoError",
    "VideoNet",
    "VideoNetConfig",
    "ViewScore",
    "assets_dir",
    "capture",
    "checkpoints_dir",
    "compare",
    "create_model",
    "lens",
    "list_models",
    "load_checkpoint",
    "model_config",
    "predict",
    "read_clip",
    "register_model",
    "sample_video",
    "save_checkpoint",
    "swapped_projections",
]
