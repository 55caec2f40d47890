"""Parameters and FLOPs counted the way the paper counts them.

One multiply-add is one FLOP and BatchNorm is not counted (the convention of
Table 1, where R2D-50 at 8×224² is 32.7 GFLOPs). We count on the meta device:
shapes only, no memory, so R2D-50 + NL is counted in well under a second.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models import VideoNet, VideoNetConfig, model_config


@dataclass(frozen=True)
class ModelCost:
    params: int
    flops: int   # multiply-adds for one clip

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def measure_cost(name: str, frames: int | None = None, size: int | None = None, classes: int = 174, **overrides) -> ModelCost:
    """Params and multiply-adds of one clip for a registered model.

    frames / size default to the model's own input: 8×224² for R2D (Table 1's
    2D rows), 64×256² for SlowFast (the 16×8 setting of the 3D rows), 32×224² for I3D.
    """
    config = model_config(name, num_classes=classes, **overrides)
    if frames is not None:
        config = model_config(name, num_classes=classes, num_frames=frames, **overrides)
    return measure_architecture_cost(config, size or config.input_size)


def measure_architecture_cost(config: VideoNetConfig, size: int = 224) -> ModelCost:
    """Params and multiply-adds of one clip of `config.num_frames`×`size`² (any architecture, e.g. imported)."""
    with torch.device("meta"):
        model = VideoNet(config).eval()
        clip = torch.empty(1, 3, config.num_frames, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(clip)
    # FlopCounterMode counts 2 FLOPs per multiply-add (conv, mm, bmm, einsum).
    return ModelCost(params=count_parameters(model), flops=counter.get_total_flops() // 2)
