"""MMAction2 recognizers: 2-D TSN / TSM and 3-D I3D, with or without non-local blocks.

Follows mmaction/models/backbones/resnet.py (ConvModule names: `conv1.conv`,
`conv1.bn`, `downsample.conv`/`.bn`), resnet_tsm.py (`TemporalShift` wraps
each block's `conv1.conv` as `.net`; `NL3DWrapper` wraps a block as `.block`
beside `.non_local_block`), resnet3d.py (`ResNet3d`: the same names with
3-D kernels, `Bottleneck3d` holds its `non_local_block` itself),
mmcv/cnn/bricks/non_local.py (`theta`, `phi.0`, `g.0` with 2×2 floor
max-pooling when sub_sample, `conv_out.conv` without bias and `conv_out.bn`),
and heads/tsm_head.py / i3d_head.py (`cls_head.fc_cls`). SlowFast and
SlowOnly have a layout of their own (importers/slowfast.py). Published files are
`{'meta': {...}, 'state_dict': {'backbone.…', 'cls_head.…'}}`.
Checked logit for logit against MMAction2 1.2.0 in tests/test_importers.py
(TSM) and tests/test_importers_3d.py (I3D).
"""
from __future__ import annotations

import re

import torch

from . import slowfast
from .mapping import Rule
from .resnet import _BLOCK, _PARAM

LABEL = "MMAction2"
_CANON_BLOCK = "layer{layer}.{index}"
_WRAPPED = rf"backbone\.{_BLOCK}(\.block)?"          # NL3DWrapper puts the residual block under .block
_NL = rf"backbone\.{_BLOCK}\.non_local_block"

TO_CANONICAL = [
    Rule(r"backbone\.conv1\.conv\.weight", "conv1.weight"),
    Rule(rf"backbone\.conv1\.bn\.{_PARAM}", "bn1.{param}"),
    Rule(rf"{_WRAPPED}\.conv(?P<n>[1-3])\.conv(\.net)?\.weight", _CANON_BLOCK + ".conv{n}.weight"),
    Rule(rf"{_WRAPPED}\.conv(?P<n>[1-3])\.bn\.{_PARAM}", _CANON_BLOCK + ".bn{n}.{param}"),
    Rule(rf"{_WRAPPED}\.downsample\.conv\.weight", _CANON_BLOCK + ".downsample.0.weight"),
    Rule(rf"{_WRAPPED}\.downsample\.bn\.{_PARAM}", _CANON_BLOCK + ".downsample.1.{param}"),
    Rule(rf"{_NL}\.theta\.conv\.{_PARAM}", _CANON_BLOCK + ".nl.theta.{param}"),
    Rule(rf"{_NL}\.(?P<part>phi|g)(?P<pool>\.0)?\.conv\.{_PARAM}", _CANON_BLOCK + ".nl.{part}{pool}.{param}"),
    Rule(rf"{_NL}\.conv_out\.conv\.{_PARAM}", _CANON_BLOCK + ".nl.W.0.{param}"),
    Rule(rf"{_NL}\.conv_out\.bn\.{_PARAM}", _CANON_BLOCK + ".nl.W.1.{param}"),
    # mmcv's 'concatenation' mode adds this; kept so the refusal names the mode, not an unmatched key.
    Rule(rf"{_NL}\.concat_project\.conv\.{_PARAM}", _CANON_BLOCK + ".nl.concat_project.{param}"),
    Rule(rf"cls_head\.fc_cls\.{_PARAM}", "fc.{param}"),
]

# mmengine's ImgDataPreprocessor keeps mean/std (0-255) as buffers in some checkpoints.
PREPROCESSOR_KEYS = ("data_preprocessor.mean", "data_preprocessor.std")


# mmcv/cnn/bricks/non_local.py, `_NonLocalNd.mode`: the pairwise function. Ours has the first three
# (layers/non_local.py); only "gaussian" shows in the weights (no θ/φ), dot_product keeps θ/φ/g like
# embedded_gaussian, so the mode is read from the config text or the file name.
NL_MODES = {
    "embedded_gaussian": "softmax(θφᵀ)",
    "dot_product": "θφᵀ/N without a softmax",
    "gaussian": "softmax(XXᵀ) on the raw features, without θ/φ",
    "concatenation": "ReLU(w·[θ; φ])/N",
}
# mmaction/models/backbones/resnet3d.py, ResNet3d.__init__ defaults for what the weights do not show ...
RESNET3D_DEFAULTS = {
    "conv1_stride_t": "1", "pool1_stride_t": "1", "with_pool1": "True", "with_pool2": "True",
    "spatial_strides": "(1,2,2,2)", "temporal_strides": "(1,1,1,1)", "dilations": "(1,1,1,1)", "style": "'pytorch'",
}
# ... and the values of configs/_base_/models/i3d_r50.py, which our ResNet3D hard-codes.
I3D_R50 = {**RESNET3D_DEFAULTS, "conv1_stride_t": "2", "pool1_stride_t": "2"}


# mmaction's Resize calls mmcv.imresize, bilinear unless the config says otherwise.
RESIZE = ("bilinear", " (mmcv.imresize, MMAction2's Resize(scale=(-1, 256)))")


def config_text(info: dict) -> str:
    """The config MMAction2 (mmengine) saved in meta['cfg'] (0.x: meta['config']), or ''."""
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    text = meta.get("cfg") or meta.get("config") or ""
    return text if isinstance(text, str) else ""


def settings(tensors: dict[str, torch.Tensor], info: dict, file_name: str, fields: dict) -> tuple[dict, dict]:
    """Model settings the keys cannot show, from the config text MMAction2 stores in `meta` and the file name.

    Returns (VideoNetConfig fields, provenance notes on what was assumed).
    `use_scale` defaults to False: MMAction2's TSM/I3D non-local configs set
    it so. The TSM shift is read off the keys (a `.net` inside `conv1.conv`).
    """
    text = config_text(info)
    shift_div = re.search(r"shift_div\s*=\s*(\d+)", text)
    if shift_div and int(shift_div[1]) != 8:
        raise ValueError(f"TSM shift_div={shift_div[1]} is not supported (ours shifts 1/8 of the channels each way)")
    notes, extra = {}, {"nl_scale": False}
    if fields["block"] == "nl":
        extra, notes["nl_mode"] = non_local_settings(text, file_name, fields["nl_mode"])
    if fields.get("backbone") == "i3d":
        notes["temporal_strides"] = i3d_strides(text, file_name, fields["inflate"])
    return {"tsm": any(re.search(r"\.conv1\.conv\.net\.weight$", k) for k in tensors), **extra}, notes


def non_local_settings(config_text: str, file_name: str, from_keys: str) -> tuple[dict, str]:
    """({nl_mode, nl_scale}, where the mode came from) of mmcv's NonLocal3d blocks (I3D, TSM, SlowFast)."""
    mode, note = non_local_mode(config_text, file_name, from_keys)
    # mmcv scales by 1/√C' only in embedded_gaussian mode (use_scale is ignored by the others).
    scaled = bool(re.search(r"use_scale\s*=\s*True", config_text)) and mode == "embedded_gaussian"
    return {"nl_mode": mode, "nl_scale": scaled}, note


def non_local_mode(config_text: str, file_name: str, from_keys: str) -> tuple[str, str]:
    """The NL mode and where it comes from (for provenance); refuses 'concatenation' and contradictions.

    The mode is read from the config text (`mode='dot_product'`), from
    MMAction2's file names (`-nl-dot-product_`, `-nl-gaussian_`) and from the
    weights (`from_keys`: "gaussian" when the blocks have no θ/φ, else
    "embedded_gaussian", which dot_product's weights look like too).
    """
    modes = "|".join(NL_MODES)
    name = file_name.lower().replace("-", "_")
    found = {
        "config text": set(re.findall(rf"['\"]({modes})['\"]", config_text)),
        "file name": set(re.findall(r"embedded_gaussian|dot_product|(?<!embedded_)gaussian|concatenation", name)),
    }
    for where, named in found.items():
        if "concatenation" in named:
            raise ValueError(
                f"{file_name}: MMAction2 non-local mode 'concatenation' (named in the {where}) computes "
                f"{NL_MODES['concatenation']}; ours has embedded_gaussian, gaussian and dot_product"
            )
    named = set().union(*found.values())
    sources = [where for where, modes_there in found.items() if modes_there]
    if len(named) > 1:
        raise ValueError(f"{file_name}: the {' and '.join(sources)} name different NL modes: {sorted(named)}")
    if from_keys == "gaussian":
        if named - {"gaussian"}:
            raise ValueError(
                f"{file_name}: the non-local blocks have no θ/φ (mode 'gaussian') but the "
                f"{' and '.join(sources)} name {sorted(named)[0]!r}"
            )
        named_in = f"; named in the {' and '.join(sources)}" if sources else ""
        return "gaussian", f"gaussian (the weights have no θ/φ{named_in})"
    if named == {"gaussian"}:
        raise ValueError(
            f"{file_name}: the {' and '.join(sources)} names mode 'gaussian' ({NL_MODES['gaussian']}), "
            "but the non-local blocks have θ/φ"
        )
    if named:
        mode = named.pop()
        return mode, f"{mode} (named in the {' and '.join(sources)})"
    return "embedded_gaussian", (
        "embedded_gaussian (assumed: mmcv's default mode; neither the config text nor the file name names one, "
        "and dot_product's weights look the same)"
    )


def _backbone_text(config_text: str) -> str:
    """The config text from `backbone=` to `cls_head=` (where the recognizer configs put them), so that a
    `style=` or `dilations=` of another component is not read as the backbone's."""
    start = config_text.find("backbone")
    if start < 0:
        return ""
    stop = config_text.find("cls_head", start)
    return config_text[start:] if stop < 0 else config_text[start:stop]


def _setting(backbone_text: str, name: str) -> str | None:
    """A backbone setting as written in the config text, spaces dropped and lists as tuples: '(1,2,2,2)'."""
    match = re.search(rf"\b{name}\s*=\s*(\([^)]*\)|\[[^\]]*\]|'[^']*'|\"[^\"]*\"|\w+)", backbone_text)
    if match is None:
        return None
    value = re.sub(r"\s", "", match[1]).replace("[", "(").replace("]", ")").replace('"', "'")
    return value.replace(",)", ")")


def i3d_strides(config_text: str, file_name: str, inflate: tuple[tuple[int, ...], ...]) -> str:
    """Check the temporal strides (invisible in the weights) are i3d_r50.py's; where that comes from, for provenance."""
    backbone = _backbone_text(config_text)
    if re.search(r"type\s*=\s*['\"]ResNet3d['\"]", backbone):
        # The config builds ResNet3d: a setting it leaves out takes ResNet3d's default.
        written = {name: _setting(backbone, name) or default for name, default in RESNET3D_DEFAULTS.items()}
    else:
        written = {name: value for name in I3D_R50 if (value := _setting(backbone, name)) is not None}
    differs = [f"{name}={value}" for name, value in written.items() if value != I3D_R50[name]]
    if differs:
        raise ValueError(
            f"{file_name}: the config sets {', '.join(differs)}; ours is i3d_r50.py's ResNet3d "
            "(conv1_stride_t=2, pool1_stride_t=2, pool2, spatial strides (1,2,2,2))"
        )
    if written:
        return "i3d_r50.py's (conv1 2, pool1 2, pool2 2; read from the config text)"
    # Without a config, MMAction2's r50-heavy I3D (every block inflated, temporal strides 1) looks like ours.
    heavy_name = "heavy" in file_name.lower()
    if heavy_name or all(all(stage) for stage in inflate):
        why = "the file name says r50-heavy" if heavy_name else "every residual block is inflated"
        raise ValueError(
            f"{file_name}: {why}, as in MMAction2's i3d r50-heavy config, whose temporal strides are 1 "
            "(not visible in the weights, and no config in the file says otherwise); ours has i3d_r50.py's 2"
        )
    return "i3d_r50.py's (conv1 2, pool1 2, pool2 2; assumed: the weights do not show them and the file has no config)"


def training_frames(info: dict, file_name: str, backbone: str = "r2d") -> int | None:
    """Clip length the checkpoint was trained with, from its config or its name.

    2-D (TSN/TSM): `num_segments=` or the last of `1x1x8`. 3-D: SampleFrames'
    `clip_len=` or the first of `32x2x1` (clip_len × frame_interval × num_clips).
    """
    text = config_text(info)
    if backbone == "r2d":
        match = re.search(r"num_segments\s*=\s*(\d+)", text) or re.search(r"\d+x\d+x(\d+)", file_name)
    else:
        match = re.search(r"clip_len\s*=\s*(\d+)", text) or re.search(r"(\d+)x\d+x\d+", file_name)
    return int(match[1]) if match else None


def dataset_name(info: dict, file_name: str) -> str:
    text = (config_text(info) + " " + file_name).lower()
    for token, name in (("kinetics400", "Kinetics-400"), ("kinetics-400", "Kinetics-400"), ("sthv2", "Something-Something v2"),
                        ("sthv1", "Something-Something v1"), ("kinetics600", "Kinetics-600"), ("kinetics700", "Kinetics-700")):
        if token in text:
            return name
    return ""


def pop_preprocessor(tensors: dict[str, torch.Tensor]) -> dict:
    """mean/std (0-1 units) from data_preprocessor buffers, removed from `tensors`."""
    found = {key.split(".")[-1]: tensors.pop(key) for key in PREPROCESSOR_KEYS if key in tensors}
    return {name: [round(float(v) / 255, 6) for v in value.flatten()] for name, value in found.items()}


def own_layout(tensors: dict[str, torch.Tensor], info: dict, file_name: str) -> dict | None:
    """SlowFast / SlowOnly files, read straight to our names by importers/slowfast.py; None for the rest."""
    text = config_text(info)
    backbone = _backbone_text(text)
    found = slowfast.layout(tensors, text, file_name, lambda name: _setting(backbone, name))
    if found is not None:
        alpha = found["fields"]["slowfast_alpha"]
        found.update(rules=slowfast.TO_OURS, trained_frames=slowfast.training_frames(found["kind"], text, file_name, alpha))
        if found["fields"]["block"] == "nl":       # mmcv's NonLocal3d in the Slow pathway: as for I3D
            nl_fields, found["assumed"]["nl_mode"] = non_local_settings(text, file_name, found["fields"]["nl_mode"])
            found["fields"].update(nl_fields)
    return found
