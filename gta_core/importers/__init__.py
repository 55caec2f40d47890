"""Importers: public checkpoints of other codebases -> GTA Lens checkpoint folders.

    python -m gta_core import mmaction2 SRC.pth --out DIR [--frames T] [--labels FILE] [--name NAME] [--force]
        [--sampling dense --clip-len 32 --frame-interval 2 --num-clips 10 --crop three --crop-size 256]
    python -m gta_core import tsm SRC.pth --out DIR ...
    python -m gta_core import hf-timesformer FOLDER --out DIR ...   (config.json + model.safetensors)
    python -m gta_core import torchvision r3d_18.pth --out DIR ...   (also mc3_18, r2plus1d_18, s3d, mvit_v2_s)

MMAction2 covers TSN / TSM (+NL), I3D (+NL), SlowFast-R50 and SlowOnly-R50.

One module per foreign format says how its keys become the canonical
ResNet layout (`resnet.py`); from there one rule table leads to our names.
The source is read by `safe_load.read_source` (child process, capped,
never `weights_only=False`); the result is an ordinary checkpoint folder that
`load_checkpoint` opens without unpickling anything. `load_imagenet_backbone`
maps a torchvision ResNet state dict onto a model for `train --init-imagenet`.
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from ..checkpoint import CheckpointConfig, CheckpointError, save_checkpoint
from ..hashing import file_sha256
from ..models import VideoNet, VideoNetConfig
from ..models.video_net import FRAMES_PER_STEP
from . import hf_timesformer, mmaction2, torchvision_video, tsm
from . import mvit as torchvision_mvit
from .mapping import MappingError, fill, rename
from .pipeline import read_pipeline
from .resnet import CANONICAL_TO_OURS
from .resnet3d import read_layout
from .safe_load import DEFAULT_MEMORY_CAP, SourceError, read_source

FORMATS = {"mmaction2": mmaction2, "tsm": tsm, "hf-timesformer": hf_timesformer, "torchvision": torchvision_video}
MAPPING_VERSION = 1
# Clip length when neither the source nor --frames says: TSN/TSM's 8 segments, i3d_r50.py's clip_len 32.
DEFAULT_FRAMES = {"r2d": 8, "i3d": 32, "slowfast": 32, "video_resnet": 16}   # SlowFast: both recipes' clip_len
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class ImportFailure(Exception):
    """An import that cannot go ahead; the message is one line."""


def read_labels(path: str | Path, num_classes: int) -> list[str]:
    """Class names, one per line (e.g. MMAction2's label_map_k400.txt)."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise ImportFailure(f"{path}: cannot read the labels ({error})") from None
    if len(names) != num_classes:
        raise ImportFailure(f"{path}: {len(names)} labels for a classifier with {num_classes} classes")
    return names


def _display_name(label: str, fields: dict) -> str:
    slowfast = "SlowFast" if fields.get("slowfast_fast_pathway", True) else "SlowOnly"
    if fields.get("backbone") == "video_resnet":
        return f"{label} {fields['video_resnet']}"
    if fields.get("backbone") == "s3d":
        return f"{label} s3d"
    if fields.get("backbone") == "mvit":
        return torchvision_mvit.display_name(label, fields)
    family = {"i3d": "I3D", "slowfast": slowfast}.get(fields.get("backbone", "r2d"), "TSM" if fields.get("tsm") else "TSN")
    return f"{label} {family}-R{fields['depth']}" + ("-NL" if fields["block"] == "nl" else "")


def _clip_length(fields: dict, frames: int | None, trained_frames: int | None, what: str) -> int:
    """--frames, else the source's training clip length, else the default; a 3-D backbone's strides divide it."""
    backbone = fields.get("backbone", "r2d")
    length = frames or trained_frames or DEFAULT_FRAMES[backbone]
    step = FRAMES_PER_STEP.get(backbone, 1)
    if backbone == "slowfast":
        step = fields.get("slowfast_alpha", step)
    if backbone == "video_resnet":
        step = 1 if fields["video_resnet"] == "mc3_18" else 8
    if length % step:
        origin = "--frames" if frames else "the source's clip length"
        steps = {"slowfast": "the Slow pathway's", "video_resnet": "layer4's", "s3d": "S3D's last Inception block",
                 "mvit": "MViT's patch embedding"}.get(backbone, "the I3D's res3-res5")
        raise ImportFailure(
            f"{what}: {origin} {length} is not divisible by {step} "
            f"(each time step of {steps} stands for {step} frames)"
        )
    return length


def _layout(fmt, tensors: dict, info: dict, source: Path, what: str) -> tuple[dict, dict, dict, int | None]:
    """(config fields, tensors under our names, provenance notes, the source's clip length).

    Most formats go through the canonical ResNet layout; a format may read a
    family of its own straight to our names (MMAction2's SlowFast / SlowOnly, torchvision's video CNNs).
    """
    own = fmt.own_layout(tensors, info, source.name) if hasattr(fmt, "own_layout") else None
    if own is not None:
        return own["fields"], rename(own["tensors"], own["rules"], what), own["assumed"], own["trained_frames"]
    canonical = rename(tensors, fmt.TO_CANONICAL, what)
    fields, to_ours = read_layout(canonical, what)
    extra_fields, assumed = fmt.settings(tensors, info, source.name, fields)
    fields.update(extra_fields)
    trained_frames = fmt.training_frames(info, source.name, fields.get("backbone", "r2d"))
    return fields, rename(canonical, to_ours, what), assumed, trained_frames


def convert(
    format_name: str,
    source: Path,
    frames: int | None = None,
    overrides: dict | None = None,
    memory_cap: int | None = None,
) -> tuple[VideoNet, dict]:
    """Read `source` (the reader's address space capped at `memory_cap` bytes, default 4 GiB),
    build our model with its weights; returns (model, facts for the config).

    overrides: ClipSpec fields from the command line (sampling, frame_interval, num_clips, ...).
    """
    fmt = FORMATS[format_name]
    if hasattr(fmt, "convert_folder"):          # a folder of JSON + safetensors, read by the format itself
        return fmt.convert_folder(source, frames, overrides, memory_cap)
    what = f"{source.name} ({format_name})"
    tensors, info = read_source(source, memory_cap=memory_cap)
    preprocessing = fmt.pop_preprocessor(tensors)
    fields, mapped, assumed, trained_frames = _layout(fmt, tensors, info, source, what)
    if "num_classes" not in fields:
        raise MappingError(f"{what}: no classifier found (expected the format's head weights)")
    backbone = fields.get("backbone", "r2d")
    published = fmt.published_pipeline(fields) if hasattr(fmt, "published_pipeline") else {}
    pipeline, pipeline_notes = read_pipeline(
        fmt.config_text(info), source.name, backbone, overrides or {}, fmt.RESIZE, published, f"{fmt.LABEL}'s published value",
        slow_ratio=fields.get("slowfast_alpha", 1),
    )
    trained_frames = pipeline.pop("num_frames", None) or trained_frames
    fields["num_frames"] = _clip_length(fields, frames, trained_frames, what)
    model = VideoNet(VideoNetConfig(**fields))
    state = fill(model.state_dict(), mapped, what)
    model.load_state_dict(state, strict=True)
    facts = {
        "display_name": _display_name(fmt.LABEL, fields),
        "dataset": fmt.dataset_name(info, source.name),
        "trained_frames": trained_frames,
        "reader": info.get("reader"),
        "preprocessing": preprocessing,
        "num_source_tensors": len(tensors),
        "assumed": {**assumed, "pipeline": pipeline_notes},
        "pipeline": pipeline,
        "class_names": fmt.class_names(fields["num_classes"]) if hasattr(fmt, "class_names") else None,
    }
    return model.eval(), facts


def import_checkpoint(
    format_name: str,
    source: str | Path,
    out: str | Path,
    frames: int | None = None,
    labels: str | Path | None = None,
    name: str | None = None,
    force: bool = False,
    command: str = "",
    overrides: dict | None = None,
    memory_cap: int | None = None,
) -> Path:
    """Convert `source` into the checkpoint folder `out`; nothing is written unless all of it works.

    overrides: ClipSpec fields given on the command line; they win over the source's config and name.
    """
    source, out = Path(source), Path(out)
    if format_name not in FORMATS:
        raise ImportFailure(f"unknown format {format_name!r}; choose one of {', '.join(FORMATS)}")
    if out.exists() and not force:
        raise ImportFailure(f"{out} already exists; pass --force to replace it")
    if frames is not None and not 1 <= frames <= 256:
        raise ImportFailure(f"--frames must be in [1, 256], got {frames}")
    model, facts = convert(format_name, source, frames, overrides, memory_cap)
    num_classes = model.config.num_classes
    pipeline = facts["pipeline"]
    # The weights' own preprocessor buffers first, then the config text's, then ImageNet's.
    mean = facts["preprocessing"].get("mean", pipeline.pop("mean", IMAGENET_MEAN))
    std = facts["preprocessing"].get("std", pipeline.pop("std", IMAGENET_STD))
    pipeline.pop("mean", None), pipeline.pop("std", None)
    if pipeline.get("channel_order") == "bgr" and "mean" in facts["preprocessing"]:
        mean, std = mean[::-1], std[::-1]      # the buffers are in the network's (BGR) order; ours are RGB
    class_names = read_labels(labels, num_classes) if labels else facts.get("class_names") or [
        f"class_{i}" for i in range(num_classes)
    ]
    weights = FORMATS[format_name].weights_file(source) if hasattr(FORMATS[format_name], "weights_file") else source
    config = CheckpointConfig(
        architecture=model.config.to_dict(),
        class_names=class_names,
        model_name=name or facts["display_name"],
        mean=mean,
        std=std,
        **pipeline,
        dataset={"name": facts["dataset"] or "unknown", "labels_file": Path(labels).name if labels else None},
        provenance={
            "imported": True,
            "source_format": format_name,
            "source_file": source.name,
            "source_sha256": file_sha256(weights),
            "mapping_version": MAPPING_VERSION,
            "reader": facts["reader"],
            "trained_frames": facts["trained_frames"],
            "num_source_tensors": facts["num_source_tensors"],
            # What the weights do not show (NL mode, temporal strides) and where we took it from.
            "assumed": facts["assumed"],
            "command": command,
        },
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    try:
        save_checkpoint(staging, model, config)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def load_imagenet_backbone(model: VideoNet, source: str | Path) -> dict:
    """Fill `model`'s ResNet from a torchvision-layout ImageNet state dict (classifier dropped).

    Returns a report: tensors loaded, source tensors dropped (fc), and ours
    left at their initialisation (temporal blocks, the head).
    """
    source = Path(source)
    what = f"{source.name} (torchvision ResNet)"
    tensors, _ = read_source(source)
    tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    dropped = sorted(k for k in tensors if k.startswith("fc."))
    mapped = rename({k: v for k, v in tensors.items() if k not in dropped}, CANONICAL_TO_OURS, what)
    expected = model.state_dict()

    def kept_at_init(key: str) -> bool:
        return key.startswith("head.") or ".attention." in key

    state = fill(expected, mapped, what, allow_missing=kept_at_init)
    model.load_state_dict(state, strict=False)
    return {
        "source": source.name,
        "loaded": len(state),
        "dropped": dropped,
        "kept_at_init": sorted(k for k in expected if k not in state),
    }


IMPORT_ERRORS = (SourceError, MappingError, ImportFailure, CheckpointError, ValueError)


# Command-line overrides of the source's test pipeline: flag -> ClipSpec field.
PIPELINE_FLAGS = {"--sampling": "sampling", "--frame-interval": "frame_interval", "--num-clips": "num_clips",
                  "--twice-sample": "twice_sample", "--crop": "crop", "--crop-size": "input_size",
                  "--resize-shorter": "resize_shorter", "--resize-to": "resize_to", "--channel-order": "channel_order"}


def _overrides(args: argparse.Namespace) -> dict:
    return {field: getattr(args, field) for field in PIPELINE_FLAGS.values() if getattr(args, field, None) is not None}


def _command(args: argparse.Namespace) -> str:
    """The import command from the parsed arguments (also right when called in-process)."""
    words = ["python", "-m", "gta_core", "import", args.format, args.source, "--out", args.out]
    flags = {"--frames": args.frames, "--labels": args.labels, "--name": args.name,
             **{flag: getattr(args, field, None) for flag, field in PIPELINE_FLAGS.items()}}
    for flag, value in flags.items():
        if isinstance(value, list):          # --resize-to H W
            words += [flag, *map(str, value)]
        elif value is not None:
            words += [flag, str(value).lower() if isinstance(value, bool) else str(value)]
    return shlex.join(words + (["--force"] if args.force else []))


def _memory_cap(gib: float | None) -> int | None:
    if gib is not None and not 0.5 <= gib <= 1024:
        raise ImportFailure(f"--max-memory must be in [0.5, 1024] GiB, got {gib}")
    return int(gib * (1 << 30)) if gib else None


def cmd_import(args: argparse.Namespace) -> int:
    command = _command(args)
    try:
        folder = import_checkpoint(
            args.format, args.source, args.out, args.frames, args.labels, args.name, args.force, command,
            overrides=_overrides(args),
            memory_cap=_memory_cap(getattr(args, "max_memory", None)),
        )
    except IMPORT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {folder}; describe it with: python -m gta_core info {folder}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import",
        help="convert a public checkpoint (MMAction2, TSM, HF TimeSformer, torchvision video) into a GTA Lens checkpoint folder",
        description="Read a .pth safely (child process, capped, no code runs) and write config.json + model.safetensors.",
    )
    p.add_argument("format", choices=sorted(FORMATS), help="source layout")
    p.add_argument("source", help="the .pth/.pt file (hf-timesformer: the save_pretrained folder)")
    p.add_argument("--out", required=True, help="checkpoint folder to write")
    p.add_argument("--frames", "--clip-len", dest="frames", type=int,
                   help="clip length T: TSN segments or dense clip_len (default: the source's config or file "
                        "name, else 8 for 2-D, 32 for I3D)")
    pipe = p.add_argument_group("test pipeline (default: the source's config text, else its file name; "
                                "docs/importing-pipelines.md)")
    pipe.add_argument("--sampling", choices=("tsn", "dense"), help="TSN segments or dense clips")
    pipe.add_argument("--frame-interval", dest="frame_interval", type=int, help="dense: gap between frames")
    pipe.add_argument("--num-clips", dest="num_clips", type=int, help="dense: test-time clips per video")
    pipe.add_argument("--twice-sample", dest="twice_sample", type=lambda v: v.lower() in ("1", "true", "yes"),
                      metavar="{true,false}", help="test-time second view (TSM's twice_sample)")
    pipe.add_argument("--crop", choices=("centre", "three", "ten"),
                      help="one centre crop, or MMAction2's ThreeCrop or TenCrop")
    pipe.add_argument("--crop-size", dest="input_size", type=int, help="crop side in pixels")
    pipe.add_argument("--resize-shorter", dest="resize_shorter", type=int, help="shorter side before the crop")
    pipe.add_argument("--resize-to", dest="resize_to", type=int, nargs=2, metavar=("H", "W"),
                      help="every frame to exactly H×W before the crop, the aspect not kept (torchvision's transform)")
    pipe.add_argument("--channel-order", dest="channel_order", choices=("rgb", "bgr"),
                      help="channel order the network reads")
    p.add_argument("--labels", help="class names, one per line (default class_0, class_1, ...)")
    p.add_argument("--name", help="display name (default e.g. 'MMAction2 TSM-R50-NL')")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--max-memory", type=float, metavar="GIB",
                   help=f"address space of the reader process in GiB (default {DEFAULT_MEMORY_CAP >> 30}; "
                        "raise it for a trusted checkpoint over ~1 GB)")
    p.set_defaults(func=cmd_import)


__all__ = ["FORMATS", "ImportFailure", "convert", "import_checkpoint", "load_imagenet_backbone", "read_labels"]
