"""Checkpoints: a folder with `config.json` and `model.safetensors`.

Loading is strict and never unpickles: weights come only through
safetensors. The library validates the header (it is stricter than a parser
of our own would be: it also rejects overlapping tensors); we cap the file's
size, refuse pickles renamed to .safetensors unopened, and turn every error
into a CheckpointError that names the file.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import torch
from pydantic import Field, JsonValue
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .models import VideoNet, VideoNetConfig
from .schema import parse_json, validate
from .video import ClipSpec, sampling_problem

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "gta-lens-checkpoint"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar")
MAX_CONFIG_BYTES = 1 << 20           # a config with 10k class names is ~0.5 MB
MAX_WEIGHTS_BYTES = 2 << 30
# Field types for configs read from files (validated by gta_core.schema through pydantic).
Side = Annotated[int, Field(ge=16, le=2048)]
Text = Annotated[str, Field(max_length=1024)]
JsonObject = dict[Text, JsonValue]
Triple = Annotated[list[float], Field(min_length=3, max_length=3)]
Size = Annotated[list[Side], Field(min_length=2, max_length=2)]     # (height, width)


# Fields added after format_version 1's first configs, and their defaults (what a config without them means).
LATER_DEFAULTS = {"resize_to": None, "crop_rounding": "floor"}


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


@dataclass
class CheckpointConfig:
    architecture: JsonObject            # VideoNetConfig fields (validated by model_config)
    class_names: Annotated[list[Text], Field(min_length=1, max_length=25_000)]
    model_name: Text = ""               # registry name it was created from, for display
    input_size: Side = 224              # square crop side
    resize_shorter: Side = 256          # shorter side before the crop
    # Or every frame to exactly (H, W), the aspect not kept (torchvision's video transforms); None: resize_shorter.
    resize_to: Size | None = None
    crop_rounding: Text = "floor"       # an odd margin's extra pixel: "floor" (MMAction2) or "round" (torchvision)
    mean: Triple = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: Triple = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # Which frames and views the source reads (gta_core/video/clip.py ClipSpec, docs/importing-pipelines.md);
    # the allowed values and their combinations are checked by video.sampling_problem.
    sampling: Text = "tsn"              # "tsn": T segments, one frame each; "dense": T frames frame_interval apart
    frame_interval: int = 1             # dense: gap between the clip's frames
    num_clips: int = 1                  # dense: test-time clips spread over the video
    twice_sample: bool = False          # test-time second view (TSN: each segment's first frame)
    crop: Text = "centre"               # "centre", "three" or "ten" (MMAction2's ThreeCrop / TenCrop)
    interpolation: Text = "area"        # resize: "area" (ours) or "bilinear" (mmcv.imresize)
    channel_order: Text = "rgb"         # the order the network wants its input channels in
    average_views: Text = "prob"        # multi-view logits: mean softmax ("prob") or mean logits ("score")
    dataset: JsonObject = field(default_factory=dict)     # name, variant, seed, root...
    provenance: JsonObject = field(default_factory=dict)  # command, git commit, device, time
    metrics: JsonObject = field(default_factory=dict)     # e.g. {"val_top1": 0.93}
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def num_frames(self) -> int:
        return int(self.architecture["num_frames"])

    def model_config(self) -> VideoNetConfig:
        return VideoNetConfig.from_dict(self.architecture)

    def clip_spec(self) -> ClipSpec:
        """How this checkpoint wants its input read: T frames, resize, crop, normalise."""
        return ClipSpec.from_config(self.to_dict())

    def to_dict(self) -> dict:
        # num_frames is written out too: it is what a clip reader needs first. The fields added later
        # only when they differ from their default, so a config that does not use them reads as before.
        values = {k: v for k, v in asdict(self).items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}
        return {**values, "num_frames": self.num_frames}

    @classmethod
    def from_dict(cls, values: dict, source: str = CONFIG_NAME) -> "CheckpointConfig":
        if not isinstance(values, dict):
            raise CheckpointError(f"{source}: expected a JSON object at the top level")
        if values.get("format") != FORMAT:
            raise CheckpointError(f"{source}: not a GTA Lens checkpoint config (format={values.get('format')!r})")
        if values.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: format_version {values.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
            )
        values = dict(values)
        declared_frames = values.pop("num_frames", None)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise CheckpointError(f"{source}: unknown keys {', '.join(unknown)}")
        for key in ("architecture", "class_names"):
            if key not in values:
                raise CheckpointError(f"{source}: missing required key {key!r}")
        try:
            config = validate(cls, values)
        except ValueError as error:
            raise CheckpointError(f"{source}: {error}") from None
        config.validate(source)
        if declared_frames is not None and declared_frames != config.num_frames:
            raise CheckpointError(
                f"{source}: num_frames {declared_frames} disagrees with the architecture's {config.num_frames}"
            )
        return config

    def validate(self, source: str = CONFIG_NAME) -> None:
        """The field types and bounds (pydantic, see gta_core.schema), the architecture's, and what ties them."""
        try:
            validate(type(self), asdict(self))
        except ValueError as error:
            raise CheckpointError(f"{source}: {error}") from None
        try:
            arch = self.model_config()
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: bad architecture: {error}") from None
        if len(self.class_names) != arch.num_classes:
            raise CheckpointError(
                f"{source}: {len(self.class_names)} class names for a model with {arch.num_classes} classes"
            )
        if not all(v > 0 for v in self.std):
            raise CheckpointError(f"{source}: std must be positive, got {self.std}")
        problem = sampling_problem(self)
        if problem:
            raise CheckpointError(f"{source}: {problem}")


@dataclass
class Checkpoint:
    model: VideoNet
    config: CheckpointConfig
    path: Path


def _plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without DDP's `module.` prefix, contiguous, on the CPU."""
    state = {}
    for key, value in model.state_dict().items():
        key = key.removeprefix("module.")
        state[key] = value.detach().to("cpu").contiguous()
    return state


def save_checkpoint(folder: str | Path, model: torch.nn.Module, config: CheckpointConfig) -> Path:
    """Write `folder`/config.json and model.safetensors (the config validated first); returns the folder."""
    folder = Path(folder)
    config.validate(str(folder / CONFIG_NAME))
    folder.mkdir(parents=True, exist_ok=True)
    # Write to temporary names first so an interrupted save never leaves a
    # config next to weights it does not describe.
    weights_tmp = folder / (WEIGHTS_NAME + ".tmp")
    config_tmp = folder / (CONFIG_NAME + ".tmp")
    save_file(_plain_state_dict(model), str(weights_tmp), metadata={"format": "pt"})
    config_tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    weights_tmp.replace(folder / WEIGHTS_NAME)
    config_tmp.replace(folder / CONFIG_NAME)
    return folder


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: '{path.suffix}' files are pickles (PyTorch's torch.save format), which can run code "
            f"when loaded; GTA Lens loads only a folder with {CONFIG_NAME} and {WEIGHTS_NAME}"
        )


def inspect_safetensors(path: Path, max_bytes: int = MAX_WEIGHTS_BYTES) -> dict[str, dict]:
    """Validate a safetensors file without loading its tensors; returns {name: {"dtype", "shape"}}.

    In front of the library only what it cannot know: our byte cap, and a pickle
    renamed to .safetensors (refused unopened). The header itself (JSON types,
    dtypes, offsets inside the file, no overlapping tensors) is the safetensors
    library's to validate; its errors become CheckpointError naming the file.
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise CheckpointError(f"{path}: {size} bytes is over the {max_bytes}-byte limit for weights")
    with path.open("rb") as handle:
        prefix = handle.read(9)
    # A safetensors file starts with its header's length (8 bytes, little-endian), then '{': a length
    # whose low byte is 0x80 looks like a pickle's first byte, so the '{' decides.
    if (prefix[:1] == b"\x80" or prefix[:4] == b"PK\x03\x04") and prefix[8:9] != b"{":
        raise CheckpointError(
            f"{path}: this is a pickle / torch.save file renamed to .safetensors; it is refused unopened"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}
            return {name: {"dtype": s.get_dtype(), "shape": s.get_shape()} for name, s in slices.items()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a valid safetensors file ({error})") from None


def shape_differences(
    expected: dict[str, tuple], found: dict[str, tuple]
) -> tuple[list[str], list[str], list[str]]:
    """Keys of `expected` absent from `found`, keys of `found` not in `expected`, keys whose shapes differ."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    return missing, unexpected, wrong


def _check_matches(model: VideoNet, tensors: dict[str, dict], weights: Path, config_path: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k.removeprefix("module."): tuple(v["shape"]) for k, v in tensors.items()}
    missing, unexpected, wrong = shape_differences(expected, found)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: weights {found[k]}, config {expected[k]})")
        raise CheckpointError(f"{weights} does not match the model described by {config_path}: " + "; ".join(parts))


def read_config(folder: str | Path) -> CheckpointConfig:
    folder = Path(folder)
    _refuse_pickle(folder)
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_NAME} (a checkpoint is a folder with {CONFIG_NAME} and {WEIGHTS_NAME})")
    if config_path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{config_path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        values = parse_json(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        reason = f"not valid JSON ({error})" if isinstance(error, UnicodeDecodeError) else str(error)
        raise CheckpointError(f"{config_path}: {reason}") from None
    return CheckpointConfig.from_dict(values, str(config_path))


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Build the model a checkpoint folder describes and load its weights strictly."""
    folder = Path(folder)
    _refuse_pickle(folder)
    if folder.is_file() and folder.name == WEIGHTS_NAME:
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a checkpoint folder")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        hint = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise CheckpointError(f"{folder}: no {WEIGHTS_NAME}{hint}")
    config = read_config(folder)
    tensors = inspect_safetensors(weights)
    # Shapes are compared on the meta device first: nothing is allocated for a config the weights do not fit.
    with torch.device("meta"):
        skeleton = VideoNet(config.model_config())
    _check_matches(skeleton, tensors, weights, folder / CONFIG_NAME)
    model = VideoNet(config.model_config())
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as error:  # safetensors raises its own types; name the file
        raise CheckpointError(f"{weights}: could not be read ({error})") from None
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return Checkpoint(model=model.to(device).eval(), config=config, path=folder)
