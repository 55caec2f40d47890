"""Read-only views of a `Capture` for display: what the app draws, as numpy.

The app (app/) never indexes attention tensors itself; it asks this module for
the slice a figure needs. Everything here goes through the record's own methods
(`layers.protocol.BlockRecord`: no list of block types here) and is cheap: a
query forms one row from the lazy q, k (one (S, C') × (C',) product, under a
millisecond for SlowFast-NL at 64×256²), the rest is indexing and small reductions.

Coordinates. A query is (t, fy, fx): a frame index of the model's input clip
and a position given as a fraction of the input crop's height and width, in
[0, 1). A block of a 3D model has fewer time steps than the clip has frames
(SlowFast's Slow pathway: one per α = 4 frames; I3D's res3/res4: one per 8):
frame t is read at the step that stands for it (`step_of`, from the record's
`frame_spans`), and labels name both ("slow pathway, step 3 = frames 12–15").
Fractions let one
query serve models with different input sizes and blocks with different
feature grids: on a block with grid (H, W) the query cell is
(⌊fy·H⌋, ⌊fx·W⌋), i.e. y = Y·H / input_size for a pixel row Y of the crop.
One point of the scene serves models with different resizes and crops
(`scene_point` / `crop_point` through each clip's `crop_box`) and different
samplings (`frame_for` through each clip's frame indices).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .records import Capture
from .matrices import invariant_summary


# --------------------------------------------------------------------------- time: frames and time steps


def frame_spans(record) -> tuple[tuple[int, int], ...]:
    """The [start, stop) input frames each time step of the record's block stands for."""
    if record.frame_spans:
        return tuple(record.frame_spans)
    return tuple((t, t + 1) for t in range(record.num_steps))


def step_of(record, frame: int) -> int:
    """The time step of the record's block that stands for input frame `frame` (clamped to the clip)."""
    spans = frame_spans(record)
    for step, (start, stop) in enumerate(spans):
        if start <= frame < stop:
            return step
    return 0 if frame < spans[0][0] else len(spans) - 1


def frame_for(video_frame: int, frame_indices) -> int:
    """The frame of a clip (sampled at `frame_indices` of the video) nearest the video's frame `video_frame`.

    Models that sample a video differently (8 TSN segments, 32 dense frames from
    the middle) are queried at the same moment; ties go to the earlier frame,
    and a moment outside the clip reads at its first or last frame.
    """
    distances = [abs(int(index) - video_frame) for index in frame_indices]
    return distances.index(min(distances))


# --------------------------------------------------------------------------- space: one point of the scene


def scene_point(fy: float, fx: float, crop_box) -> tuple[float, float]:
    """A point given as fractions of a model's crop -> fractions of the whole frame.

    crop_box (top, left, bottom, right) is the crop as fractions of the whole
    (rotated) frame (`Clip.crop_box`): resize and crop in one.
    """
    top, left, bottom, right = crop_box
    return top + fy * (bottom - top), left + fx * (right - left)


def crop_point(sy: float, sx: float, crop_box) -> tuple[float, float, bool]:
    """Fractions of the whole frame -> (fy, fx) of a model's crop, and whether the point lies inside it.

    A point outside the crop (a wider model's border) reads at the nearest edge of this crop.
    """
    top, left, bottom, right = crop_box
    fy, fx = (sy - top) / (bottom - top), (sx - left) / (right - left)
    inside = 0.0 <= fy < 1.0 and 0.0 <= fx < 1.0
    limit = 1.0 - 1e-9
    return min(max(fy, 0.0), limit), min(max(fx, 0.0), limit), inside


def box_in_crop(box, crop_box) -> tuple[float, float, float, float]:
    """Another model's crop `box` (fractions of the whole frame) as fractions of `crop_box`; may pass 0 and 1."""
    top, left, bottom, right = crop_box
    height, width = bottom - top, right - left
    return ((box[0] - top) / height, (box[1] - left) / width, (box[2] - top) / height, (box[3] - left) / width)


def pathway(block: str) -> str | None:
    """"slow" for SlowFast's "slow.res3.1", None for one-pathway models ("res3.1")."""
    head = block.split(".")[0]
    return head if head in ("slow", "fast") else None


def is_per_frame(record) -> bool:
    """True when every time step is one input frame (R2D, SlowFast's Fast pathway)."""
    return all(stop - start == 1 for start, stop in frame_spans(record))


def step_label(record, step: int) -> str:
    """"frame 3" (R2D), or "slow pathway, step 3 = frames 12–15" (3D) for captions."""
    start, stop = frame_spans(record)[step]
    where = f"{pathway(record.name)} pathway, " if pathway(record.name) else ""
    if is_per_frame(record):
        return f"{where}frame {start}"
    return f"{where}step {step} = frames {start}–{stop - 1}"


def step_names(record) -> list[str]:
    """Short per-step names for ticks and titles: "t=3" (one frame a step) or "3: f12–15"."""
    if is_per_frame(record):
        return [f"t={start}" for start, _ in frame_spans(record)]
    return [f"{step}: f{start}–{stop - 1}" for step, (start, stop) in enumerate(frame_spans(record))]


def tick_names(record, clip_frames: int) -> list[str] | None:
    """Step names for a figure's ticks and titles, or None when the steps are the clip's frames (R2D)."""
    if is_per_frame(record) and len(frame_spans(record)) == clip_frames:
        return None
    return step_names(record)


def step_frames(frames: np.ndarray, record) -> np.ndarray:
    """(T', S, S, 3): for each time step, the first input frame it stands for (the one the Slow pathway sees)."""
    return frames[[start for start, _ in frame_spans(record)]]


def find_record(records: dict, block: str):
    """The record named `block`, or the one at the same stage and index on another pathway layout
    ("res3.1" on SlowFast is "slow.res3.1"), so one query serves 2D and 3D models side by side."""
    if block in records:
        return records[block]
    suffix = ".".join(block.split(".")[-2:])
    return next((r for name, r in records.items() if ".".join(name.split(".")[-2:]) == suffix), None)


def record_note(record, batch: int = 0) -> str | None:
    """A caption saying what a record's maps hold where it differs from the paper's blocks (a TimeSformer
    layer: CLS token, patch grid, time steps, heads); None for most blocks."""
    return record.note(batch)


def layer_for_stage(records: dict, block: str) -> str | None:
    """For a model whose blocks are all layers of the network itself (TimeSformer: "layer.0", ...) and a query
    on a ResNet stage block it lacks ("res3.1"): the name of its last layer, shown beside the ResNet's block."""
    if not records or block in records or block.startswith("layer."):
        return None
    if not any(record.inserted for record in records.values()):
        return list(records)[-1]
    return None


def grid_cell(fy: float, fx: float, grid: tuple[int, int]) -> tuple[int, int]:
    """The cell (y, x) of a (H, W) grid that holds the fractional position (fy, fx)."""
    height, width = grid
    y = min(max(int(math.floor(fy * height)), 0), height - 1)
    x = min(max(int(math.floor(fx * width)), 0), width - 1)
    return y, x


# Per axis (rows, columns): each key cell's [start, stop) as fractions of the input crop.
KeyExtents = tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]


def key_extents(key_spans, grid: tuple[int, int]) -> KeyExtents | None:
    """Where each pooled key cell lies in the crop, from the pooling's own spans.

    A key cell pooling feature rows [a, b) of an H-row grid covers crop rows
    [a/H, b/H): on a 7×7 grid with ceil pooling the 4 key rows of a 112 crop
    are [0, 32), [32, 64), [64, 96), [96, 112) pixels, not 28 each.
    """
    if not key_spans or not key_spans[0]:
        return None
    return tuple(tuple((a / size, b / size) for a, b in spans) for spans, size in zip(key_spans, grid))


def to_cpu_float32(cap: Capture) -> Capture:
    """The same capture with every tensor on the CPU as float32 (bf16 / CUDA runs)."""
    return cap.to("cpu", torch.float32)


def probabilities(cap: Capture, batch: int = 0) -> np.ndarray:
    """(num_classes,) softmax of the logits."""
    return torch.softmax(cap.logits[batch].float(), dim=-1).cpu().numpy()


def top_k(probs: np.ndarray, class_names: list[str], k: int) -> list[tuple[int, str, float]]:
    """[(class index, name, probability)], most probable first."""
    order = np.argsort(-probs, kind="stable")[: max(1, k)]
    return [(int(i), class_names[i], float(probs[i])) for i in order]


def block_kind(record) -> str:
    """A short label of what a record's block is: NL, SA, TA, TAPE, DNL, SA+TAPE or GTA (its `kind`, upper case)."""
    return record.kind.upper()


@dataclass
class QueryView:
    """What one block says about one query point (paper Fig. 1, 3, 7)."""

    block: str
    kind: str                              # block_kind()
    step: int                              # the block's time step that holds the query frame
    step_label: str                        # e.g. "frame 4" or "slow pathway, step 3 = frames 12–15"
    cell: tuple[int, int]                  # query (y, x) on the block's feature grid
    grid: tuple[int, int]                  # (H, W) feature grid
    key_grid: tuple[int, int] | None       # (h, w) grid the spatial keys live on
    key_extents: KeyExtents | None         # where each key cell lies in the crop (fractions)
    spacetime: np.ndarray | None = None    # NL: (T', h, w) row over all time steps
    spatial: np.ndarray | None = None      # SA part: (h, w) map inside the query step
    temporal: np.ndarray | None = None     # TA part: (T',) weights of the query step over steps
    # GTA: the learned rows M̂[t] (mean |M̂| over groups and heads); the same at every pixel.
    global_rows: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # False for dot-product NL rows (θφᵀ/N): signed, not summing to 1; draw them on a diverging scale.
    is_distribution: bool = True


def _numpy(value):
    if isinstance(value, dict):
        return {label: _numpy(v) for label, v in value.items()}
    if not isinstance(value, torch.Tensor):
        return value                       # a flag (is_distribution)
    return value.detach().float().cpu().numpy()


def query_view(record, t: int, fy: float, fx: float, batch: int = 0) -> QueryView:
    """Slices of a record for the query (frame t, fy, fx); see the module docstring for coordinates."""
    step = step_of(record, t)
    grid = record.query_grid()
    y, x = grid_cell(fy, fx, grid)
    slices = record.query_slices(step, y, x, batch)
    key_spans = slices.pop("key_spans", None)
    return QueryView(
        record.name, block_kind(record), step=step, step_label=step_label(record, step), cell=(y, x), grid=grid,
        key_grid=slices.pop("key_grid", None), key_extents=key_extents(key_spans, grid),
        **{name: _numpy(value) for name, value in slices.items()},
    )


def temporal_matrices(record, batch: int = 0) -> dict[str, np.ndarray]:
    """The (T, T) temporal matrices a block has, by label (paper Fig. 5).

    TA / TAPE: the input-dependent weights averaged over pixels.
    GTA: mean |M̂_P| and mean |M̂_R| over groups and heads (input-independent).
    """
    return _numpy(record.temporal_matrices(batch))


def gta_head_matrices(record) -> dict[str, np.ndarray]:
    """GTA's learned matrices as (G, N_h, T, T) arrays by label ("M̂_P", "M̂_R")."""
    return _numpy(record.head_matrices())


def comparison_matrices(record, batch: int = 0) -> dict[str, np.ndarray]:
    """The (T, T) matrices to compare across checkpoints, by label.

    GTA: `invariant_summary` of each M̂ (blind to permuting groups/heads and to the
    scales W_V, W^O and the BatchNorm absorb, so two checkpoints are compared as
    functions, not as parameterisations). TA / TAPE: the weights averaged over pixels.
    """
    heads = gta_head_matrices(record)
    if heads:
        return {f"{label} invariant summary": invariant_summary(matrix) for label, matrix in heads.items()}
    return temporal_matrices(record, batch)


@dataclass
class RegionView:
    maps: np.ndarray         # (T, K, H, W): each region map sums to 1 over H·W
    order: list[int]         # region indices, strongest first
    strength: np.ndarray     # (K,)


def region_view(record, batch: int = 0) -> RegionView | None:
    """Region GTA's K region maps over the frames (paper Fig. 3, 6), or None."""
    regions = record.region_maps(batch)
    if regions is None:
        return None
    maps, order, strength = regions
    return RegionView(maps=_numpy(maps), order=order, strength=_numpy(strength))


# --------------------------------------------------------------------------- is the video from the training set?


def prediction_entropy(probs: np.ndarray) -> tuple[float, float]:
    """(H in nats, H / log C): 0 for a one-hot prediction, 1 for a uniform one over C classes."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    nats = float(-(p * np.log(p)).sum()) + 0.0      # + 0.0: no -0.0 for a one-hot prediction
    classes = np.asarray(probs).size
    return nats, (nats / math.log(classes) if classes > 1 else 0.0)


def video_origin(path) -> dict | None:
    """{"name": "synthetic", "variant"} for a clip listed in a synthetic generator's manifest.json
    beside it (the bundled clips, assets/synth), else None: where the video comes from is not known."""
    manifest = Path(path).parent / "manifest.json"
    try:
        rows = json.loads(manifest.read_text(encoding="utf-8")).get("videos", []) if manifest.is_file() else []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    for row in rows:
        if isinstance(row, dict) and row.get("file") == Path(path).name and isinstance(row.get("variant"), str):
            return {"name": "synthetic", "variant": row["variant"]}
    return None


@dataclass(frozen=True)
class DomainCheck:
    trained_on: str            # the checkpoint's dataset, "name · variant"
    in_domain: bool            # the video is known to come from that dataset
    reason: str                # why (or why not), one clause


def dataset_label(dataset: dict) -> str:
    """A checkpoint's training set as one line, "name · variant" (e.g. synthetic (SSv2 layout) · temporal)."""
    name, variant = dataset.get("name") or "unknown dataset", dataset.get("variant")
    return f"{name} · {variant}" if variant else name


def domain_check(dataset: dict, video_path) -> DomainCheck:
    """Is the video from the dataset the checkpoint was trained on (config.json's `dataset`)?

    Known only when the video lies under the dataset's recorded root, or when it is
    a bundled synthetic clip and the checkpoint was trained on the synthetic set of
    the same variant. Anything else (an upload, a real clip, a Kinetics checkpoint
    on a synthetic clip) counts as out of domain: the probabilities are not
    calibrated there, however confident they look.
    """
    name, variant = dataset.get("name") or "unknown dataset", dataset.get("variant")
    trained_on = dataset_label(dataset)
    root = dataset.get("root")
    if root and Path(root).is_dir() and Path(root).resolve() in Path(video_path).resolve().parents:
        return DomainCheck(trained_on, True, f"the video lies under the training set's root {root}")
    origin = video_origin(video_path)
    if origin is None:
        return DomainCheck(trained_on, False, "the video's source is not known to be that dataset")
    seen = f"{origin['name']} · {origin['variant']}"
    same = name.lower().startswith(origin["name"]) and variant == origin["variant"]
    return DomainCheck(trained_on, same, f"the video is a {seen} clip")


def dependence_label(scores: dict) -> str:
    """Part -> Score (gta_core.query_dependence) as one line: "NL: JS 0.112 bits, 84% explained by the mean row"."""
    parts = []
    for part, score in scores.items():
        js = "JS undefined (signed rows)" if score.js is None else f"JS {score.js:.3f} bits"
        parts.append(f"{part}: {js}, {score.explained:.0%} explained by the mean row"
                     + (" (analytic)" if score.analytic else ""))
    return "; ".join(parts)
