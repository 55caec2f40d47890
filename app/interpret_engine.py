"""Cached interpretation runs for the app: attributions, order probe, knockouts, export.

Each result is cached by (checkpoint folder, weights mtime, video content
digest, device, options) in `st.cache_data`: the values are small (an IG map
is T·S² floats) and immutable. The model comes from `engine.load_model` (one
shared instance per checkpoint); `gta_core.interpret` only reads it and works
on a private copy, and the copy is taken under `engine.model_lock()` so it
never sees another session's swapped-projection flags or capture hooks.
The runs themselves also hold the lock: the 2 CPU cores (or the GPU) serve
one model at a time, as for captures. Interpretation runs in float32
whatever the precision chosen in the sidebar (gradients in bfloat16 would
break IG's completeness).
"""
from __future__ import annotations

import io
import sys
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from gta_core import interpret

from . import engine
from .settings import checkpoint_folders, load_settings


def checkpoint_path(name: str) -> Path:
    """The folder of a chosen checkpoint, by the name its ModelResult carries."""
    folders = {path.name: path for path in checkpoint_folders(load_settings(sys.argv[1:]).checkpoint_roots)}
    if name not in folders:
        raise FileNotFoundError(f"checkpoint {name} is no longer in the checkpoint folders")
    return folders[name]


def decoder_or_stop(video: engine.VideoChoice) -> str:
    """The video's decoder (probing an untrusted file first); a message and st.stop() when it is unusable."""
    try:
        return engine.decoder_for(video)
    except Exception as error:  # noqa: BLE001 - a message, never a traceback
        from .ui import plain_error

        st.error(plain_error(error))
        st.stop()


def run_for(function, result: engine.ModelResult, video: engine.VideoChoice, decoder: str, *options):
    """Call one of the cached functions below for a model result shown in the app (keys filled in)."""
    path = checkpoint_path(result.name)
    return function(
        str(path), engine.weights_mtime(path), video.digest, result.device, *options, str(video.path), decoder
    )


def _model_and_clip(checkpoint: str, mtime_ns: int, digest: str, device: str, video_path: str, decoder: str):
    loaded = engine.load_model(checkpoint, mtime_ns, device)
    spec = loaded.config.clip_spec()
    clip = engine.read_video(digest, spec, video_path, decoder)
    return loaded.model, clip.tensor.to(device)


@st.cache_data(show_spinner=False, max_entries=64)
def attributions(
    checkpoint: str, mtime_ns: int, digest: str, device: str, target: int | None, steps: int, fill: str,
    _video_path: str, _decoder: str,
) -> tuple[interpret.Attribution, interpret.Attribution, interpret.FrameOcclusion]:
    """(Integrated Gradients, Grad-CAM, frame occlusion) for `target` (None: the predicted class)."""
    model, clip = _model_and_clip(checkpoint, mtime_ns, digest, device, _video_path, _decoder)
    with engine.model_lock():
        ig = interpret.integrated_gradients(model, clip, target, steps=steps, internal_batch_size=8)
        cam = interpret.grad_cam(model, clip, ig.target)
        occlusion = interpret.frame_occlusion(model, clip, ig.target, fill=fill)
    return ig, cam, occlusion


@st.cache_data(show_spinner=False, max_entries=64)
def order_probe(
    checkpoint: str, mtime_ns: int, digest: str, device: str, seed: int, _video_path: str, _decoder: str
) -> interpret.OrderProbe:
    model, clip = _model_and_clip(checkpoint, mtime_ns, digest, device, _video_path, _decoder)
    with engine.model_lock():
        return interpret.order_probe_one(model, clip, seed)


@st.cache_data(show_spinner=False, max_entries=64)
def knockouts(
    checkpoint: str, mtime_ns: int, digest: str, device: str, target: int | None, _video_path: str, _decoder: str
) -> list[interpret.KnockoutResult]:
    """Every component of `knockout_components`, knocked out one at a time."""
    model, clip = _model_and_clip(checkpoint, mtime_ns, digest, device, _video_path, _decoder)
    with engine.model_lock():
        return interpret.knockout(model, clip, None, target)


@st.cache_data(show_spinner=False, max_entries=64)
def footprint(
    checkpoint: str, mtime_ns: int, digest: str, device: str, block: str, step: int, y: int, x: int,
    _video_path: str, _decoder: str,
):
    """gta_core.footprint of query (step, y, x) of `block` (one backward pass; the model is only read)."""
    from gta_core.footprint import footprint as footprint_of

    model, clip = _model_and_clip(checkpoint, mtime_ns, digest, device, _video_path, _decoder)
    with engine.model_lock():
        return footprint_of(model, clip[None], block, step, y, x)


def export_zip(
    video: engine.VideoChoice, names: list[str], device: str, ig_steps: int, knockout: str
) -> tuple[bytes, str | None]:
    """The CLI export of this video for these checkpoints, zipped in memory, and the export's note
    (set when no browser was there to draw the PNGs).

    Holds the model lock for the whole export: captures hook the shared models.
    """
    from gta_core.export import ExportOptions, export_video

    decoder = engine.decoder_for(video)
    checkpoints = {}
    for name in names:
        path = checkpoint_path(name)
        checkpoints[name] = engine.load_model(str(path), engine.weights_mtime(path), device)
    options = ExportOptions(ig_steps=ig_steps, knockout=knockout, device=device, decoder=decoder)
    with tempfile.TemporaryDirectory(prefix="gta-lens-export-") as tmp:
        with engine.model_lock():
            result = export_video(video.path, checkpoints, tmp, options)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(result.folder.rglob("*")):
                if path.is_file():
                    archive.write(path, Path(result.folder.name) / path.relative_to(result.folder))
    return buffer.getvalue(), result.note
