"""HF transformers' TimeSformer (`TimesformerForVideoClassification.save_pretrained` folders) into ours.

    python -m gta_core import hf-timesformer DIR --out OUT

DIR holds `config.json` (TimesformerConfig) and `model.safetensors`, as
`save_pretrained` writes them (and `preprocessor_config.json` when the
processor was saved too). Nothing is unpickled: JSON and safetensors only.
Follows transformers/models/timesformer/modeling_timesformer.py (4.57):
`timesformer.embeddings.*`, `timesformer.encoder.layer.{i}.*` (its spatial
attention is `attention`, its temporal one `temporal_attention` plus
`temporal_dense`), `timesformer.layernorm`, `classifier`.
"""
from __future__ import annotations

from pathlib import Path

from ..models import VideoNet, VideoNetConfig
from ..schema import parse_json
from .mapping import MappingError, Rule, fill, rename
from .pipeline import read_pipeline
from .safe_load import SourceError, read_source

LABEL = "HF transformers"
_PARAM = r"(?P<param>weight|bias)"
_LAYER = r"timesformer\.encoder\.layer\.(?P<i>\d+)"
_OURS = "backbone.layers.{i}"
TO_OURS = [
    Rule(r"timesformer\.embeddings\.cls_token", "backbone.cls_token"),
    Rule(r"timesformer\.embeddings\.position_embeddings", "backbone.position"),
    Rule(r"timesformer\.embeddings\.time_embeddings", "backbone.time"),
    Rule(rf"timesformer\.embeddings\.patch_embeddings\.projection\.{_PARAM}", "backbone.patch_embed.{param}"),
    Rule(rf"{_LAYER}\.temporal_layernorm\.{_PARAM}", _OURS + ".temporal_norm.{param}"),
    Rule(rf"{_LAYER}\.temporal_attention\.attention\.qkv\.{_PARAM}", _OURS + ".temporal.qkv.{param}"),
    Rule(rf"{_LAYER}\.temporal_attention\.output\.dense\.{_PARAM}", _OURS + ".temporal.out.{param}"),
    Rule(rf"{_LAYER}\.temporal_dense\.{_PARAM}", _OURS + ".temporal_dense.{param}"),
    Rule(rf"{_LAYER}\.layernorm_before\.{_PARAM}", _OURS + ".spatial_norm.{param}"),
    Rule(rf"{_LAYER}\.attention\.attention\.qkv\.{_PARAM}", _OURS + ".spatial.qkv.{param}"),
    Rule(rf"{_LAYER}\.attention\.output\.dense\.{_PARAM}", _OURS + ".spatial.out.{param}"),
    Rule(rf"{_LAYER}\.layernorm_after\.{_PARAM}", _OURS + ".mlp_norm.{param}"),
    Rule(rf"{_LAYER}\.intermediate\.dense\.{_PARAM}", _OURS + ".mlp.0.{param}"),
    Rule(rf"{_LAYER}\.output\.dense\.{_PARAM}", _OURS + ".mlp.2.{param}"),
    Rule(rf"timesformer\.layernorm\.{_PARAM}", "backbone.norm.{param}"),
    Rule(rf"classifier\.{_PARAM}", "head.{param}"),
]
MAX_JSON_BYTES = 4 << 20      # config.json with 25 000 labels is ~1 MB
RESIZE = ("bilinear", " (VideoMAEImageProcessor's resample=BILINEAR)")
# VideoMAEImageProcessor's defaults (TimeSformer's processor) when the folder has no preprocessor_config.json.
DEFAULT_MEAN, DEFAULT_STD = [0.45, 0.45, 0.45], [0.225, 0.225, 0.225]


def _json(path: Path) -> dict:
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(f"{size} bytes; a config is at most {MAX_JSON_BYTES}")
        values = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SourceError(f"{path}: cannot read it as JSON ({error})") from None
    if not isinstance(values, dict):
        raise SourceError(f"{path}: expected a JSON object")
    return values


def weights_file(folder: Path) -> Path:
    return folder / "model.safetensors"


def _architecture(config: dict, what: str) -> dict:
    """VideoNetConfig fields from a TimesformerConfig; refuses what ours does not compute."""
    if config.get("model_type") != "timesformer":
        raise MappingError(f"{what}: config.json model_type is {config.get('model_type')!r}, not 'timesformer'")
    checks = {"attention_type": "divided_space_time", "hidden_act": "gelu", "num_channels": 3}
    for key, wanted in checks.items():
        if config.get(key, wanted) != wanted:
            raise MappingError(f"{what}: {key}={config[key]!r}; ours is TimeSformer's {key}={wanted!r}")
    labels = config.get("id2label") or {}
    return {
        "backbone": "timesformer",
        "num_frames": int(config.get("num_frames", 8)),
        "input_size": int(config.get("image_size", 224)),
        "num_classes": len(labels) or 2,
        "dropout": 0.0,                                  # HF's classifier has no dropout
        "tsf_patch_size": int(config.get("patch_size", 16)),
        "tsf_hidden_size": int(config.get("hidden_size", 768)),
        "tsf_layers": int(config.get("num_hidden_layers", 12)),
        "tsf_heads": int(config.get("num_attention_heads", 12)),
        "tsf_mlp_size": int(config.get("intermediate_size", 3072)),
        "tsf_eps": float(config.get("layer_norm_eps", 1e-6)),
        "tsf_qkv_bias": bool(config.get("qkv_bias", True)),
    }


def _preprocessing(folder: Path, image_size: int) -> tuple[dict, dict, str]:
    """(mean, std), (resize, crop) and where they came from: preprocessor_config.json, else
    VideoMAEImageProcessor's defaults."""
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        note = "VideoMAEImageProcessor's defaults (assumed: the folder has no preprocessor_config.json)"
        return {"mean": DEFAULT_MEAN, "std": DEFAULT_STD}, {"resize_shorter": image_size, "input_size": image_size}, note
    values = _json(path)
    size, crop = values.get("size") or {}, values.get("crop_size") or {}
    return (
        {"mean": [float(v) for v in values.get("image_mean", DEFAULT_MEAN)],
         "std": [float(v) for v in values.get("image_std", DEFAULT_STD)]},
        {"resize_shorter": int(size.get("shortest_edge", image_size)), "input_size": int(crop.get("height", image_size))},
        "read from preprocessor_config.json",
    )


def convert_folder(folder: Path, frames: int | None = None, overrides: dict | None = None,
                   memory_cap: int | None = None) -> tuple[VideoNet, dict]:
    """Build our TimeSformer from a save_pretrained folder; returns (model, facts for the config)."""
    what = f"{folder.name} (hf-timesformer)"
    if not folder.is_dir():
        raise SourceError(f"{folder}: hf-timesformer reads a save_pretrained folder (config.json + model.safetensors)")
    config = _json(folder / "config.json")
    fields = _architecture(config, what)
    trained_frames = fields["num_frames"]
    fields["num_frames"] = frames or trained_frames
    tensors, info = read_source(weights_file(folder), memory_cap=memory_cap)
    model = VideoNet(VideoNetConfig(**fields))
    state = fill(model.state_dict(), rename(tensors, TO_OURS, what), what)
    model.load_state_dict(state, strict=True)
    labels = config.get("id2label") or {}
    normalisation, published, note = _preprocessing(folder, fields["input_size"])
    pipeline, pipeline_notes = read_pipeline("", folder.name, "timesformer", overrides or {}, RESIZE, published, note)
    pipeline.pop("num_frames", None)      # config.json's num_frames (the time table's length) is the clip length
    facts = {
        "display_name": f"{LABEL} TimeSformer ({fields['tsf_layers']} layers)",
        "dataset": "",
        "trained_frames": trained_frames,
        "reader": info.get("reader"),
        "preprocessing": normalisation,
        "num_source_tensors": len(tensors),
        "assumed": {"preprocessing": note, "pipeline": pipeline_notes},
        "pipeline": pipeline,
        "class_names": [str(labels[k]) for k in sorted(labels, key=int)] if labels else None,
    }
    return model.eval(), facts
