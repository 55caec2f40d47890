"""The source's test pipeline: which frames, resize, crop, normalisation and test views.

MMAction2 (mmengine) saves `meta['cfg'] = Config.pretty_text`: the config as
Python source with every `dict(...)` written out, e.g.

    test_pipeline = [
        dict(io_backend='disk', type='DecordInit'),
        dict(clip_len=32, frame_interval=2, num_clips=10, test_mode=True, type='SampleFrames'),
        dict(scale=(-1, 256), type='Resize'),
        dict(crop_size=256, type='ThreeCrop'), ...]

It is read with `ast` (never executed): `dict(...)`, lists, tuples and
constants become values, anything else (a variable, an expression) None.
Without a config the file name speaks (`32x2x1` = clip_len × frame_interval
× num_clips, `1x1x8` = 8 TSN segments, the TSM repository's `dense`), and the
rest is assumed. Every field says where it came from (`notes`), and CLI
overrides win over both.
"""
from __future__ import annotations

import ast
import re

_NAMES = ("test_pipeline", "val_pipeline", "train_pipeline")
_DATALOADERS = {"test_pipeline": "test_dataloader", "val_pipeline": "val_dataloader",
                "train_pipeline": "train_dataloader"}
# What MMAction2's recognition configs for Kinetics use when nothing says otherwise.
DEFAULTS = {"resize_shorter": 256, "input_size": 224, "crop": "centre"}


def _literal(node: ast.AST):
    """A config value: dict(...) calls, {..}, [..], (..) and constants; None for anything else."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {k.arg: _literal(k.value) for k in node.keywords if k.arg}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_literal(e) for e in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    return None


def config_values(text: str) -> dict:
    """Top-level assignments of a config text, as plain values ({} when the text does not parse)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    values = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            values[statement.targets[0].id] = _literal(statement.value)
    return values


def _pipeline(values: dict) -> tuple[str, list[dict]] | None:
    """The first of test / val / train pipeline the config holds (top level, else its dataloader's)."""
    for name in _NAMES:
        steps = values.get(name)
        if not isinstance(steps, list):
            loader = values.get(_DATALOADERS[name])
            dataset = loader.get("dataset") if isinstance(loader, dict) else None
            steps = dataset.get("pipeline") if isinstance(dataset, dict) else None
        if isinstance(steps, list):
            return name, [s for s in steps if isinstance(s, dict)]
    return None


def _step(steps: list[dict], *types: str) -> dict | None:
    return next((s for s in steps if s.get("type") in types), None)


def from_config(values: dict) -> tuple[dict, dict]:
    """(ClipSpec fields, notes) read from the config's pipeline, preprocessor and head."""
    fields, notes = {}, {}
    found = _pipeline(values)
    if found:
        name, steps = found
        sample = _step(steps, "SampleFrames", "DenseSampleFrames")
        if sample and isinstance(sample.get("clip_len"), int):
            fields.update(_sampling(sample) if sample["type"] == "SampleFrames" else _window(sample))
            notes["sampling"] = f"read from the config text's {name} ({sample.get('type')})"
        resize = _step(steps, "Resize")
        scale = resize.get("scale") if resize else None
        sides = isinstance(scale, tuple) and len(scale) == 2 and all(isinstance(v, int) for v in scale)
        fixed = sides and resize.get("keep_ratio", True) is False and min(scale) > 0
        if sides and (-1 in scale or fixed):
            if fixed:             # keep_ratio=False: scale is the output's (w, h), the aspect not kept
                fields.update(resize_to=[scale[1], scale[0]], resize_shorter=min(scale))
            else:
                fields["resize_shorter"] = int(max(scale))
            fields["interpolation"] = "bilinear" if resize.get("interpolation", "bilinear") == "bilinear" else "area"
            notes["resize"] = f"read from the config text's {name} (Resize scale={scale}{', keep_ratio=False' * fixed})"
        crop = _step(steps, "CenterCrop", "ThreeCrop", "TenCrop")
        if crop and isinstance(crop.get("crop_size"), int):
            fields["input_size"] = crop["crop_size"]
            fields["crop"] = {"ThreeCrop": "three", "TenCrop": "ten"}.get(crop["type"], "centre")
            notes["crop"] = f"read from the config text's {name} ({crop['type']} {crop['crop_size']})"
        normalize = _step(steps, "Normalize")        # MMAction2 0.x kept the normalisation in the pipeline
        if normalize:
            fields.update(_normalisation(normalize, "to_bgr", flips_when=True))
            notes["normalisation"] = f"read from the config text's {name} (Normalize)"
    model = values.get("model") if isinstance(values.get("model"), dict) else {}
    preprocessor = model.get("data_preprocessor")
    if isinstance(preprocessor, dict) and "mean" in preprocessor:
        fields.update(_normalisation(preprocessor, "to_rgb", flips_when=True))
        notes["normalisation"] = "read from the config text's data_preprocessor"
    head = model.get("cls_head") if isinstance(model.get("cls_head"), dict) else {}
    test_cfg = model.get("test_cfg") if isinstance(model.get("test_cfg"), dict) else {}
    average = head.get("average_clips", test_cfg.get("average_clips"))
    if average in ("prob", "score"):
        fields["average_views"] = average
        notes["average_views"] = f"read from the config text (average_clips='{average}')"
    return fields, notes


def _sampling(sample: dict) -> dict:
    clip_len, num_clips = sample["clip_len"], int(sample.get("num_clips") or 1)
    twice = bool(sample.get("twice_sample", False))
    if clip_len == 1:            # MMAction2's 2-D recognizers: num_clips segments of one frame
        return {"sampling": "tsn", "num_frames": num_clips, "frame_interval": 1, "num_clips": 1, "twice_sample": twice}
    return {"sampling": "dense", "num_frames": clip_len, "frame_interval": int(sample.get("frame_interval") or 1),
            "num_clips": num_clips, "twice_sample": twice}


def _window(sample: dict) -> dict:
    """DenseSampleFrames(clip_len, frame_interval, num_clips, sample_range=64, num_sample_positions=10)."""
    clip_len, clips = sample["clip_len"], int(sample.get("num_clips") or 1)
    if sample.get("sample_range", 64) != 64 or (clip_len > 1 and clips > 1):
        raise ValueError(f"DenseSampleFrames {sample} is not supported (only sample_range=64 with clip_len=1 "
                         "or num_clips=1); pass --sampling and its flags to choose another rule")
    positions = int(sample.get("num_sample_positions", 10))
    if clip_len == 1:            # TSM: num_clips frames 64 // num_clips apart
        return {"sampling": "window", "num_frames": clips, "frame_interval": 64 // clips, "num_clips": positions}
    return {"sampling": "window", "num_frames": clip_len, "frame_interval": int(sample.get("frame_interval") or 1),
            "num_clips": positions}


def _normalisation(step: dict, flag: str, flips_when: bool) -> dict:
    """mean/std in RGB order on the [0, 1] scale, and the channel order the network reads.

    The config's mean/std are in the network's channel order. Decord gives RGB
    frames; 0.x's `to_bgr=True` and 1.x ActionDataPreprocessor's `to_rgb=True`
    (a BGR->RGB swap applied to RGB frames) both hand the network BGR.
    """
    order = "bgr" if bool(step.get(flag, False)) == flips_when else "rgb"
    mean, std = [float(v) / 255 for v in step["mean"]], [float(v) / 255 for v in step.get("std", (1, 1, 1))]
    if order == "bgr":
        mean, std = mean[::-1], std[::-1]
    return {"mean": [round(v, 6) for v in mean], "std": [round(v, 6) for v in std], "channel_order": order}


def from_file_name(file_name: str, backbone: str, slow_ratio: int = 1) -> tuple[dict, dict]:
    """(ClipSpec fields, notes) from a published file name: `32x2x1`, `1x1x8`, the TSM repository's `dense`.

    slow_ratio: SlowFast's α. Its names give the Slow pathway's frames (`4x16x1`: 4 frames 16 apart),
    so the clip is α times as long at 1/α the interval (32 frames 2 apart for α = 8).
    """
    name = file_name.lower()
    match = re.search(r"(\d+)x(\d+)x(\d+)", name)
    if match:
        clip_len, interval, clips = (int(v) for v in match.groups())
        if clip_len > 1 and slow_ratio > 1:
            clip_len, interval = clip_len * slow_ratio, max(1, interval // slow_ratio)
        fields = _sampling({"clip_len": clip_len, "frame_interval": interval, "num_clips": clips})
        if fields["sampling"] == "dense":
            fields["num_clips"] = 1    # the name gives the training clips; the test clips are not in it
        slow = f", the Slow pathway's; the clip: α = {slow_ratio} times the frames" if slow_ratio > 1 else ""
        return fields, {"sampling": f"from the file name's {match[0]} (clip_len × frame_interval × num_clips{slow}); "
                                    "test views assumed: one clip"}
    segments = re.search(r"segment(\d+)", name)
    if "dense" in name and segments:
        count = int(segments[1])
        # ops/dataset.py (TSM): dense_sample takes num_segments frames 64 // num_segments apart; its test
        # (test_models.py --dense_sample) takes 10 such clips from linspace starts.
        return ({"sampling": "window", "num_frames": count, "frame_interval": max(1, 64 // count), "num_clips": 10},
                {"sampling": f"from the file name's 'dense' and segment{count}: {count} frames {64 // count} apart, "
                             "10 test clips (the TSM repository's dense_sample)"})
    if segments:
        return ({"sampling": "tsn", "num_frames": int(segments[1])},
                {"sampling": f"from the file name's segment{segments[1]} (TSN segments)"})
    return {}, {}


def read_pipeline(config_text: str, file_name: str, backbone: str, overrides: dict,
                  resize_default: tuple[str, str] = ("bilinear", ""), published: dict | None = None,
                  published_note: str = "", slow_ratio: int = 1) -> tuple[dict, dict]:
    """ClipSpec fields for an import and where each came from: overrides, then the config, then what
    the publisher states (`published`: torchvision's weight enums, HF's preprocessor_config.json), then the name.

    Fields absent everywhere take MMAction2's usual values (short side 256,
    centre crop 224; 2-D: TSN segments, 3-D: i3d_r50's 32x2x1), and the notes
    say they were assumed. resize_default: the format's (interpolation, why).
    """
    named, name_notes = from_file_name(file_name, backbone, slow_ratio)
    configured, config_notes = from_config(config_values(config_text)) if config_text else ({}, {})
    if "sampling" in configured:         # the config's sampling is all of it; the name's is not mixed in
        named = {k: v for k, v in named.items() if k not in configured and k not in _SAMPLING_KEYS}
        name_notes.pop("sampling", None)
    published = published or {}
    fields = {**named, **published, **configured}
    if "resize_shorter" in configured and "resize_to" not in configured:
        fields.pop("resize_to", None)      # the config's shorter-side resize replaces a published fixed size
    notes = {**name_notes, **{_TOPIC.get(k, k): published_note for k in published}, **config_notes}
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        fields.update(given)
        if "resize_shorter" in given and "resize_to" not in given:
            fields.pop("resize_to", None)  # --resize-shorter asks for a shorter-side resize instead
        if given.get("crop") in ("three", "ten"):
            fields.pop("crop_rounding", None)  # MMAction2's ThreeCrop / TenCrop, whose offsets floor
        for topic in sorted({_TOPIC.get(key, key) for key in given}):
            said = ", ".join(f"{k}={v}" for k, v in given.items() if _TOPIC.get(k, k) == topic)
            notes[topic] = f"{notes.get(topic, 'not in the source')}; overridden on the command line: {said}"
    if "sampling" not in notes:
        notes["sampling"] = _ASSUMED["r2d" if backbone == "r2d" else "3d"]
    if "sampling" not in fields:
        fields.update({"sampling": "tsn"} if backbone == "r2d" else {"sampling": "dense", "frame_interval": 2})
    interpolation, why = resize_default
    notes.setdefault("resize", _ASSUMED["resize"].format(interpolation=interpolation, why=why))
    notes.setdefault("crop", _ASSUMED["crop"])
    for key, value in {**DEFAULTS, "interpolation": interpolation}.items():
        fields.setdefault(key, value)
    return fields, notes


_SAMPLING_KEYS = ("sampling", "num_frames", "frame_interval", "num_clips", "twice_sample")
# Which note an override amends.
_TOPIC = {**{key: "sampling" for key in _SAMPLING_KEYS}, "input_size": "crop", "resize_shorter": "resize",
          "resize_to": "resize", "crop_rounding": "crop", "channel_order": "normalisation"}
_ASSUMED = {
    "r2d": "assumed: TSN segments (neither the config text nor the file name says)",
    "3d": "assumed: dense, frame_interval 2 (i3d_r50's 32x2x1; neither the config text nor the file name says)",
    "resize": "assumed: shorter side 256, {interpolation}{why}",
    "crop": "assumed: one centre crop of 224 (MMAction2's CenterCrop)",
}
