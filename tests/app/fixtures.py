"""Random-weight checkpoints and tiny videos for the app's tests and bench.

    python -m tests.app.fixtures checkpoints/      # the random demo checkpoints `make run` ships

A random-weight checkpoint has exactly the shipped format (config.json +
model.safetensors); its provenance says `random_weights: true` and the app
labels it so. The blocks' closing BatchNorm γ is drawn non-zero, so every
block changes the features (a fresh block is the identity).
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from gta_core import CheckpointConfig, create_model, save_checkpoint
from gta_core.data.synth import TEMPORAL_CLASSES, appearance_templates, class_name
from tests.helpers import activate_blocks

TEMPORAL_NAMES = [class_name(template) for template, *_ in TEMPORAL_CLASSES]
APPEARANCE_NAMES = [class_name(template) for template in appearance_templates()]
DEMO_CHECKPOINTS = {  # folder name -> (registry name, seed, dataset variant)
    "random_demo_nl": ("demo_r2d18_nl", 1, "temporal"),
    "random_demo_dnl": ("demo_r2d18_dnl", 2, "temporal"),
    "random_demo_gta": ("demo_r2d18_gta", 3, "temporal"),
}


def make_random_checkpoint(
    folder: Path, model_name: str, seed: int = 0, variant: str = "temporal", **overrides
) -> Path:
    names = TEMPORAL_NAMES if variant == "temporal" else APPEARANCE_NAMES
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=len(names), **overrides)
    activate_blocks(model, seed)
    demo = model_name.startswith("demo_")
    config = CheckpointConfig(
        architecture=model.config.to_dict(),
        class_names=names,
        model_name=model_name,
        input_size=112 if demo else model.config.input_size,
        resize_shorter=128 if demo else model.config.input_size * 8 // 7,
        dataset={"name": f"none: random weights ({variant} class names)", "variant": variant},
        provenance={"random_weights": True, "seed": seed, "made_by": "tests/app/fixtures.py"},
        metrics={},
    )
    return save_checkpoint(folder, model, config)


# What a "trained" fixture checkpoint adds to its initial M̂₀: a known learned change.
LEARNED_CHANGE = 0.25


def make_trained_checkpoint(folder: Path, model_name: str, seed: int, variant: str = "temporal") -> Path:
    """A checkpoint whose provenance reads like the trainer's (seed, train_config) and whose
    every M̂ is its seed's M̂₀ + LEARNED_CHANGE, so the learned change M̂ − M̂₀ is known."""
    names = TEMPORAL_NAMES if variant == "temporal" else APPEARANCE_NAMES
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=len(names))
    activate_blocks(model, seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("pixel_matrix", "region_matrix")):
                p.add_(LEARNED_CHANGE)
    config = CheckpointConfig(
        architecture=model.config.to_dict(), class_names=names, model_name=model_name,
        input_size=112, resize_shorter=128, dataset={"name": f"fixture ({variant})", "variant": variant},
        provenance={"seed": seed, "train_config": {"model": model_name, "seed": seed}}, metrics={},
    )
    return save_checkpoint(folder, model, config)


def write_video(path: Path, frames: int = 16, size: tuple[int, int] = (128, 160), seed: int = 0) -> Path:
    """A small mp4 (mp4v) of a coloured square moving left to right over a textured background."""
    height, width = size
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8.0, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    side = height // 4
    colour = tuple(int(c) for c in rng.integers(60, 255, 3))
    for t in range(frames):
        frame = background.copy()
        x = int((width - side) * t / max(frames - 1, 1))
        y = height // 2 - side // 2
        cv2.rectangle(frame, (x, y), (x + side, y + side), colour, thickness=-1)
        writer.write(frame)
    writer.release()
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gta_lens_random_checkpoints")
    for folder, (model_name, seed, variant) in DEMO_CHECKPOINTS.items():
        path = make_random_checkpoint(out / folder, model_name, seed, variant)
        size = sum(p.stat().st_size for p in path.iterdir())
        print(f"{path}: {size / 1e6:.2f} MB")
