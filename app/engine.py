"""Loading checkpoints, reading clips and running captures, cached.

Caches (all shared by every session, all holding immutable values):
- `load_model`: one model per (checkpoint folder, weights mtime, device).
- `run_model`: one `ModelResult` per (checkpoint, weights mtime, video content
  digest, device, precision, records dtype). Its records are lazy (q, k and
  the softmax statistics; a Query point row is computed on demand), kept on
  the CPU as `--records-dtype`, so a new query never reruns the model.
  A result is never mutated after it is made, and its key contains the video's
  content digest, so sharing it between sessions leaks nothing.
  Both live in one byte budget shared by every session (`memory_cache`, an LRU
  by size, `--cache-mb`), not in st.cache_resource: its max_entries counts
  values, not bytes, and cache_data would pickle tens of MB on every hit.
- `read_video`: one decoded clip per (video content digest, clip spec), shared by models with the same spec.
- `_probe`: the child-process probe's verdict per content digest.
Model runs are serialised by one lock (`model_lock`): the GPU (or the 2 CPU
cores) runs one model at a time, and swapped-projection captures set flags
on the shared model.

`INFERENCE_CALLS` counts model runs per checkpoint folder; the tests read it to
show that a query-point or view change reruns nothing.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import shutil
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from gta_core import Capture, CheckpointConfig, CheckpointError, capture, load_checkpoint
from gta_core.checkpoint import read_config
from gta_core.hashing import file_sha256
from gta_core.matrices import COMPARISON_FILE, initial_block_matrices, read_comparison, reproducible_seed
from gta_core.video import ClipSpec, VideoError, VideoLimits, probe_video, read_clip
from gta_core.records import RECORD_DTYPES
from gta_core.views import probabilities

from .memory import ByteLRU, default_budget, tensor_bytes
from .settings import UPLOAD_LIMIT_BYTES, list_videos

INFERENCE_CALLS: collections.Counter = collections.Counter()
UPLOAD_FOLDER_LIMIT_BYTES = 4 * UPLOAD_LIMIT_BYTES   # one session's uploads on disk; the oldest go first
UNTRUSTED_LIMITS = VideoLimits(max_bytes=UPLOAD_LIMIT_BYTES, probe_timeout_s=30.0)
LISTING_TTL_S = 60                 # a video added below a sub-folder shows within this
RESULT_CACHE_ENTRIES = 12          # decoded clips (read_video): a 64×256² clip is ~50 MB


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    return choice


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class CheckpointEntry:
    path: Path
    name: str
    config: CheckpointConfig | None
    error: str | None

    @property
    def description(self) -> str:
        if self.config is None:
            return f"{self.name} — unreadable: {self.error}"
        dataset = self.config.dataset.get("name") or "?"
        return f"{self.name} · {self.config.model_name or 'custom'} · {dataset}"


@st.cache_data(show_spinner=False, max_entries=256)
def _read_entry(path: str, mtime_ns: int) -> CheckpointEntry:
    try:
        return CheckpointEntry(Path(path), Path(path).name, read_config(path), None)
    except (CheckpointError, OSError, ValueError, RecursionError) as error:
        # One bad folder is listed as unreadable; it never takes the sidebar down for the others.
        return CheckpointEntry(Path(path), Path(path).name, None, str(error).splitlines()[0][:300])


def checkpoint_entry(path: Path) -> CheckpointEntry:
    try:
        mtime_ns = (path / "config.json").stat().st_mtime_ns
    except OSError as error:
        return CheckpointEntry(path, path.name, None, f"{path / 'config.json'}: {error.strerror}")
    return _read_entry(str(path), mtime_ns)


def weights_mtime(path: Path) -> int:
    weights = path / "model.safetensors"
    return weights.stat().st_mtime_ns if weights.exists() else 0


@st.cache_resource(show_spinner=False)
def memory_cache() -> ByteLRU:
    """The one byte-bounded cache of models and results, shared by every session of this server."""
    return ByteLRU(default_budget())


def set_cache_budget(budget: int | None) -> None:
    """The budget from the settings (`--cache-mb`); None keeps the default."""
    if budget is not None:
        memory_cache().budget = budget


def load_model(path: str, mtime_ns: int, device: str):
    """A loaded `Checkpoint` (model in eval mode on `device`); raises CheckpointError."""
    return memory_cache().get_or_make(
        ("model", path, mtime_ns, device),
        lambda: load_checkpoint(path, device=device),
        lambda loaded: tensor_bytes([*loaded.model.parameters(), *loaded.model.buffers()]),
    )


@st.cache_resource(show_spinner=False)
def model_lock() -> threading.Lock:
    return threading.Lock()


@st.cache_data(show_spinner=False, max_entries=32)
def _initial_matrices(architecture: str, seed: int, _config: CheckpointConfig) -> dict:
    return initial_block_matrices(_config, seed)


def initial_matrices(config: CheckpointConfig) -> dict | None:
    """M̂₀ per block ({block: {"M̂_P": (G, N_h, T, T), ...}}) when the recorded seed rebuilds it, else None."""
    seed = reproducible_seed(config)
    if seed is None:
        return None
    return _initial_matrices(json.dumps(config.architecture, sort_keys=True), seed, config)


@st.cache_data(show_spinner=False, max_entries=16)
def _comparison(path: str, mtime_ns: int) -> dict | None:
    return read_comparison(Path(path).parent)


def matrix_comparison(checkpoint: str) -> dict | None:
    """The within/across-dataset numbers saved beside a checkpoint's folder (gta_core.matrices), if any."""
    path = Path(checkpoint).parent / COMPARISON_FILE
    return _comparison(str(path), path.stat().st_mtime_ns) if path.is_file() else None


def is_random(config: CheckpointConfig) -> bool:
    return bool(config.provenance.get("random_weights"))


# --------------------------------------------------------------------------- videos


@dataclass(frozen=True)
class VideoChoice:
    path: Path
    digest: str            # sha256 of the file's bytes
    trusted: bool          # bundled with the project; otherwise probed in a child process
    name: str
    uploaded: bool = False  # from the browser: no label to look up


@st.cache_data(show_spinner=False, max_entries=64, ttl=LISTING_TTL_S)
def _listed_videos(folder: str, mtime_ns: int, skip_datasets: bool) -> list[Path]:
    return list_videos(Path(folder), skip_datasets)


def listed_videos(folder: Path, skip_datasets: bool = False) -> list[Path]:
    """`settings.list_videos`, walked again only when the folder's mtime moves (a file added or
    removed at its top) or after LISTING_TTL_S (a change deeper down), not on every rerun."""
    try:
        mtime_ns = folder.stat().st_mtime_ns
    except OSError:
        return []
    return _listed_videos(str(folder), mtime_ns, skip_datasets)


def video_from_file(path: Path, trusted: bool) -> VideoChoice:
    return VideoChoice(path, file_sha256(path), trusted, path.name)


class UploadFolder:
    """One session's private upload folder: `tempfile.mkdtemp` (mode 0700), at most `limit` bytes
    (the oldest uploads are deleted to make room), removed when the session's state is dropped
    (the object is garbage-collected when Streamlit forgets the session) or at exit."""

    def __init__(self, limit: int = UPLOAD_FOLDER_LIMIT_BYTES) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="gta-lens-upload-"))
        self.limit = limit
        self.remove = weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def store(self, name: str, data: bytes) -> tuple[Path, str]:
        """(path, sha256) of `data` stored under its content digest, never under the name the browser sent."""
        digest = hashlib.sha256(data).hexdigest()
        suffix = Path(name).suffix.lower()
        suffix = suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 6 else ".bin"
        path = self.path / f"{digest}{suffix}"
        if not path.exists():
            self._make_room(len(data))
            tmp = path.with_suffix(suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path, digest

    def _make_room(self, size: int) -> None:
        files = sorted(self.path.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        used = sum(p.stat().st_size for p in files)
        while files and used + size > self.limit:
            oldest = files.pop(0)
            used -= oldest.stat().st_size
            oldest.unlink()


def video_from_upload(name: str, data: bytes, folder: UploadFolder) -> VideoChoice:
    """Store an upload in the session's own folder; it is untrusted (probed, decoded by PyAV only)."""
    if len(data) > UPLOAD_LIMIT_BYTES:
        raise VideoError("file_too_large", name, f"{len(data)} bytes is over the {UPLOAD_LIMIT_BYTES}-byte upload limit")
    path, digest = folder.store(name, data)
    return VideoChoice(path, digest, False, name, uploaded=True)


@st.cache_data(show_spinner=False, max_entries=256)
def _probe(digest: str, _path: str) -> tuple[str, str, str]:
    """(decoder, "", "") when the file is usable, else ("error", reason, detail). Cached by content."""
    try:
        probe_video(_path, UNTRUSTED_LIMITS, check_decord=False)
    except VideoError as error:
        return "error", error.reason, error.detail
    # decord can segfault on crafted input, and a segfault here kills the server for every user:
    # an untrusted file is decoded in this process by PyAV only.
    return "pyav", "", ""


def decoder_for(video: VideoChoice) -> str:
    """The decoder to use; untrusted files are probed first (VideoError when bad)."""
    if video.trusted:
        return "auto"
    decoder, reason, detail = _probe(video.digest, str(video.path))
    if decoder == "error":
        raise VideoError(reason, video.name, detail)
    return decoder


@st.cache_data(show_spinner=False, max_entries=256)
def ground_truth(path: str, mtime_ns: int) -> str | None:
    """The video's class when it comes with a label, else None.

    Looks for (1) a sidecar `<video>.json` / `<stem>.json` with "label" or
    "template", (2) a `manifest.json` beside it listing {"file", "class"}
    (the bundled assets), (3) the Something-Something v2 layout: train /
    validation / test JSON lists with {"id": stem, "template"} in the video's
    folder or its parent (videos/ sits beside them in SSv2 and in the
    synthetic datasets).
    """
    video = Path(path)
    manifest = _load_json(video.parent / "manifest.json")
    if isinstance(manifest, dict) and isinstance(manifest.get("videos"), list):
        for row in manifest["videos"]:
            if isinstance(row, dict) and row.get("file") == video.name and isinstance(row.get("class"), str):
                return row["class"]
    for sidecar in (video.with_name(video.name + ".json"), video.with_suffix(".json")):
        row = _load_json(sidecar)
        if isinstance(row, dict):
            label = _label_of(row)
            if label:
                return label
    for folder in (video.parent, video.parent.parent):
        for split in ("validation", "train", "test"):
            for name in (f"{split}.json", f"something-something-v2-{split}.json"):
                rows = _load_json(folder / name)
                if isinstance(rows, list):
                    for row in rows:
                        if isinstance(row, dict) and str(row.get("id")) == video.stem:
                            return _label_of(row)
    return None


def _load_json(path: Path):
    if not path.is_file() or path.stat().st_size > 64 << 20:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _label_of(row: dict) -> str | None:
    # SSv2's rule: the class is the template with the brackets removed; "label" has objects filled in.
    if isinstance(row.get("template"), str):
        return row["template"].replace("[", "").replace("]", "")
    if isinstance(row.get("label"), str):
        return row["label"]
    return None


# --------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class ModelResult:
    name: str                      # checkpoint folder name
    config: CheckpointConfig
    capture: Capture               # on the CPU, floating tensors as the records dtype (logits float32)
    swapped: Capture | None        # swapped-projection capture (Fig. 7) when the model has DNL blocks
    probs: np.ndarray              # (num_classes,)
    frames: np.ndarray             # (T, S, S, 3) uint8, what the model saw
    frame_indices: tuple[int, ...]
    num_decoded_frames: int
    repeated: bool
    decoder: str
    device: str
    precision: str
    seconds: float                 # model time (both captures), excluding decoding
    path: str = ""                 # checkpoint folder
    notice: str | None = None      # the clip's notice, e.g. fewer frames decode than the container declares
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)   # the crop in the whole frame (fractions)


def _autocast(device: str, precision: str):
    if precision == "bfloat16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _has_dnl(cap: Capture) -> bool:
    return any(getattr(r, "swappable", False) for r in cap.records.values())   # DNL or SA+TAPE


@st.cache_resource(show_spinner=False, max_entries=RESULT_CACHE_ENTRIES)
def read_video(digest: str, spec: ClipSpec, _video_path: str, _decoder: str):
    """The clip a spec asks for, decoded once per (content, spec) and shared by the models that use it."""
    return read_clip(_video_path, spec, decoder=_decoder)


def result_bytes(result: ModelResult) -> int:
    """What a result holds: its records (both captures) and the frames it shows."""
    captures = [c for c in (result.capture, result.swapped) if c is not None]
    return sum(c.nbytes() for c in captures) + result.frames.nbytes


def run_model(
    checkpoint: str, mtime_ns: int, digest: str, device: str, precision: str, _video_path: str, _decoder: str,
    records_dtype: str = "float32",
) -> ModelResult:
    """The cached result of `checkpoint` on the video (`_run_model` when not cached); raises CheckpointError / VideoError."""
    key = ("result", checkpoint, mtime_ns, digest, device, precision, records_dtype)
    cache = memory_cache()
    result = cache.get(key)
    if result is None:
        with model_lock():                 # one model run at a time; a second session waits, then finds it cached
            result = cache.get(key)
            if result is None:
                result = _run_model(checkpoint, mtime_ns, digest, device, precision, _video_path, _decoder, records_dtype)
                cache.put(key, result, result_bytes(result))
    return result


def _run_model(
    checkpoint: str, mtime_ns: int, digest: str, device: str, precision: str, _video_path: str, _decoder: str,
    records_dtype: str,
) -> ModelResult:
    """Read the clip as the checkpoint asks and capture every block; raises CheckpointError / VideoError."""
    loaded = load_model(checkpoint, mtime_ns, device)
    config = loaded.config
    spec = config.clip_spec()
    clip = read_video(digest, spec, _video_path, _decoder)
    batch = clip.tensor[None].to(device)                         # (1, 3, T, S, S)
    INFERENCE_CALLS[Path(checkpoint).name] += 1
    start = time.perf_counter()
    with _autocast(device, precision):
        cap = capture(loaded.model, batch)
        swapped = capture(loaded.model, batch, swap_projections=True) if _has_dnl(cap) else None
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    dtype = RECORD_DTYPES[records_dtype]
    cap = cap.to("cpu", dtype)
    return ModelResult(
        name=Path(checkpoint).name,
        config=config,
        capture=cap,
        swapped=swapped.to("cpu", dtype) if swapped is not None else None,
        probs=probabilities(cap),
        frames=clip.frames_uint8,
        frame_indices=tuple(clip.frame_indices),
        num_decoded_frames=clip.num_decoded_frames,
        repeated=clip.repeated,
        notice=clip.notice,
        crop_box=tuple(clip.crop_box),
        decoder=clip.decoder,
        device=device,
        precision=precision,
        seconds=seconds,
        path=checkpoint,
    )
