"""One export: models on each video, every view's figures, the files (see the package docstring)."""
from __future__ import annotations

import json
import os
import re
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..records import capture
from ..checkpoint import Checkpoint, load_checkpoint
from ..video import VIDEO_SUFFIXES, ClipSpec, VideoError, find_videos, read_clip
from .files import NO_BROWSER_NOTE, PngWriter, png_session, write_html, write_mp4

PLOTLY_JS = "plotly.min.js"
VIEWS = ("predictions", "query", "temporal", "regions", "swapped", "attributions", "order", "knockout")
VIEW_TITLES = {
    "predictions": "Predictions", "query": "Query point", "temporal": "Temporal attention", "regions": "Regions",
    "swapped": "Swapped attention", "attributions": "Attributions", "order": "Order probe", "knockout": "Knockout",
}
MODEL_STEPS = 5        # capture, Integrated Gradients, Grad-CAM, occlusion, knockouts
VIDEO_STEPS = 3        # order probe, HTML page, MP4 (plus one per model step and one per view's PNGs)


class ExportError(Exception):
    """An export that cannot be done; the message says why."""


@dataclass
class ExportOptions:
    ig_steps: int = 32
    internal_batch_size: int = 8
    knockout: str = "all"              # "all" components, "blocks" (whole blocks only) or "none"
    plotlyjs: str = "inline"           # "inline" or "shared"
    top_k: int = 5
    seed: int = 0                      # the order probe's shuffle
    device: str = "cpu"
    untrusted: bool = False            # probe videos in a child process first
    decoder: str = "auto"
    browser: str | None = None         # Chromium/Chrome for the PNGs; None: kaleido's own search

    def __post_init__(self) -> None:
        if self.knockout not in ("all", "blocks", "none"):
            raise ValueError(f"knockout must be all, blocks or none, got {self.knockout!r}")
        if self.plotlyjs not in ("inline", "shared"):
            raise ValueError(f"plotlyjs must be inline or shared, got {self.plotlyjs!r}")
        if self.ig_steps < 1 or self.internal_batch_size < 1:
            raise ValueError("ig_steps and internal_batch_size must be positive")


@dataclass
class FigureEntry:
    view: str
    key: str                           # file stem, unique within the view
    model: str | None                  # None: a figure over all models
    title: str
    figure: object                     # go.Figure


@dataclass
class VideoExport:
    video: Path
    folder: Path
    files: list[Path] = field(default_factory=list)
    note: str | None = None            # set when a part was left out (no browser: no PNGs)



# --------------------------------------------------------------------------- one model on one clip


@dataclass
class ModelRun:
    name: str
    checkpoint: Checkpoint
    frames: np.ndarray                 # (T, S, S, 3) uint8
    frame_indices: list[int]
    clip: torch.Tensor                 # (3, T, S, S)
    capture: object                    # gta_core.Capture, CPU float32
    swapped: object | None
    probs: np.ndarray
    ig: object | None = None
    cam: object | None = None
    occlusion: object | None = None
    knockouts: list = field(default_factory=list)


MODEL_STEPS = 5        # capture, Integrated Gradients, Grad-CAM, occlusion, knockouts
VIDEO_STEPS = 3        # order probe, HTML page, MP4 (plus one per model step and one per view's PNGs)


def _no_step(label: str) -> None:
    pass


def _run_model(name: str, checkpoint: Checkpoint, clip, options: ExportOptions, step=_no_step) -> ModelRun:
    from .. import interpret
    from ..views import probabilities, to_cpu_float32

    model = checkpoint.model
    batch = clip.tensor[None].to(options.device)
    cap = to_cpu_float32(capture(model, batch))
    has_dnl = any(getattr(r, "swappable", False) for r in cap.records.values())   # DNL or SA+TAPE
    swapped = to_cpu_float32(capture(model, batch, swap_projections=True)) if has_dnl else None
    run = ModelRun(name, checkpoint, clip.frames_uint8, list(clip.frame_indices), clip.tensor, cap, swapped, probabilities(cap))
    step(f"{name}: attention captured")
    target = int(run.probs.argmax())
    run.ig = interpret.integrated_gradients(
        model, clip.tensor, target, steps=options.ig_steps, internal_batch_size=options.internal_batch_size
    )
    step(f"{name}: Integrated Gradients")
    run.cam = interpret.grad_cam(model, clip.tensor, target)
    step(f"{name}: Grad-CAM")
    run.occlusion = interpret.frame_occlusion(model, clip.tensor, target)
    step(f"{name}: frame occlusion")
    if options.knockout != "none":
        components = interpret.knockout_components(model)
        if options.knockout == "blocks":
            components = [c for c in components if c.part == "block"]
        run.knockouts = interpret.knockout(model, clip.tensor, components, target) if components else []
    step(f"{name}: knockouts")
    return run


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "figure"


def figure_entries(runs: list[ModelRun], order_probes: dict, top_k: int = 5) -> list[FigureEntry]:
    """Every view's figures for the runs, as the app draws them (default query: middle frame, centre)."""
    return [entry for run in runs for entry in model_entries(run, top_k)] + order_entries(runs, order_probes)


def model_entries(run: ModelRun, top_k: int = 5) -> list[FigureEntry]:
    """One model's figures: predictions, every block's views, attributions, knockouts."""
    from .. import figures as F
    from ..views import top_k as top_classes

    m, names = run.name, run.checkpoint.config.class_names
    entries = [
        FigureEntry("predictions", _slug(f"topk_{m}"), m, "top-k", F.topk_figure(top_classes(run.probs, names, top_k))),
        FigureEntry("predictions", _slug(f"frames_{m}"), m, "sampled frames",
                    F.frame_strip_figure(run.frames, run.frame_indices, per_row=4)),
    ]
    for block, record in run.capture.records.items():
        entries += _block_entries(run, block, record)
    target_name = names[run.ig.target]
    entries += [
        FigureEntry("attributions", _slug(f"ig_{m}"), m, f"Integrated Gradients for “{target_name}” ({run.ig.steps} "
                    f"steps, Δ completeness {run.ig.delta:+.2e})", F.attribution_strip_figure(run.frames, run.ig, per_row=4)),
        FigureEntry("attributions", _slug(f"gradcam_{m}"), m, f"Grad-CAM (res5) for “{target_name}”",
                    F.attribution_strip_figure(run.frames, run.cam, per_row=4)),
        FigureEntry("attributions", _slug(f"curves_{m}"), m, "temporal importance",
                    F.temporal_importance_figure(F.attribution_curves(run.ig, run.cam), "share of |attribution| per frame")),
        FigureEntry("attributions", _slug(f"occlusion_{m}"), m, "frame occlusion", F.occlusion_figure(run.occlusion)),
    ]
    if run.knockouts:
        entries.append(FigureEntry("knockout", _slug(f"knockout_{m}"), m, f"knockout: Δ logit of “{target_name}”",
                                   F.knockout_figure(run.knockouts, target_name)))
    return entries


def _block_entries(run: ModelRun, block: str, record) -> list[FigureEntry]:
    """One block's query, temporal, regions and swapped figures at the middle frame's centre."""
    from .. import figures as F
    from ..views import gta_head_matrices, query_view, region_view, step_frames, temporal_matrices, tick_names

    entries: list[FigureEntry] = []

    def add(view, key, title, figure):
        entries.append(FigureEntry(view, _slug(f"{block}_{run.name}{key}"), run.name, f"{block}: {title}", figure))

    # The middle frame's centre; a 3D block shows the time step that holds it, one image per step.
    t, fy, fx = run.frames.shape[0] // 2, 0.5, 0.5
    view = query_view(record, t, fy, fx)
    step, when = view.step, view.step_label
    images, names = step_frames(run.frames, record), tick_names(record, run.frames.shape[0])
    if view.spacetime is not None:
        add("query", "_spacetime", f"space-time row of {when}",
            F.spacetime_figure(images, view.spacetime, step, fy, fx, 4, view.key_extents, names,
                               signed=not view.is_distribution))
    if view.spatial is not None:
        add("query", "_spatial", f"spatial, {when}",
            F.spatial_figure(images[step], view.spatial, fy, fx, f"spatial, {when}", view.key_extents))
    if view.temporal is not None:
        add("query", "_temporal", f"temporal weights of {when}",
            F.temporal_weights_figure({view.kind: view.temporal}, step, f"temporal weights of {when}", names))
    if view.global_rows:
        add("query", "_global", f"GTA row {step}",
            F.temporal_weights_figure(view.global_rows, step, f"GTA row {step}: mean |M̂|", names))
    for label, matrix in temporal_matrices(record).items():
        add("temporal", f"_{label}", label, F.matrix_figure(matrix, f"{block}: {label}", step_names=names))
    for label, heads in gta_head_matrices(record).items():
        add("temporal", f"_{label}_heads", f"{label} group × head",
            F.head_grid_figure(heads, f"{block}: {label}, group × head (signed)", names))
    regions = region_view(record)
    if regions is not None:
        add("regions", "", "strongest regions",
            F.regions_figure(images, regions.maps, regions.order[:3], regions.strength, step_names=names))
    if run.swapped is not None and view.spatial is not None and view.temporal is not None:
        other = query_view(run.swapped.records[block], t, fy, fx)
        add("swapped", "", "DNL vs swapped DNL",
            F.swapped_figure(images[step], (view.spatial, view.temporal), (other.spatial, other.temporal),
                             step, fy, fx, view.key_extents, names))
    return entries


def order_entries(runs: list[ModelRun], order_probes: dict) -> list[FigureEntry]:
    """The figure over all models: original / reversed / shuffled frames."""
    from .. import figures as F

    if not order_probes:
        return []
    class_names = {run.name: run.checkpoint.config.class_names for run in runs}
    return [FigureEntry("order", "order_probe", None, "original / reversed / shuffled frames",
                        F.order_probe_figure(order_probes, class_names))]


def overlay_frames(runs: list[ModelRun]) -> np.ndarray:
    """The MP4's frames: per sampled frame, one column per model (attention on top, Grad-CAM below)."""
    from ..views import query_view

    from ..figures import overlay

    count = min(run.frames.shape[0] for run in runs)
    side = max(run.frames.shape[1] for run in runs)
    out = []
    for t in range(count):
        columns = []
        for run in runs:
            # The same moment in every model's clip (clips of different lengths sample the video uniformly).
            f = int((t + 0.5) * run.frames.shape[0] / count)
            frame = run.frames[f]
            records = list(run.capture.records.values())
            top = frame
            if records:
                view = query_view(records[0], f, 0.5, 0.5)
                attention = view.spacetime[view.step] if view.spacetime is not None else view.spatial
                if attention is not None:
                    top = overlay(frame, attention, extents=view.key_extents, signed=not view.is_distribution)
            cam = overlay(frame, run.cam.positive_maps[f], (0.0, float(run.cam.positive_maps.max()) or 1.0))
            column = np.concatenate([_label(top, f"{run.name} {records[0].name if records else ''}"),
                                     _label(cam, "Grad-CAM")], axis=0)
            if column.shape[1] != side:
                import cv2

                column = cv2.resize(column, (side, side * 2), interpolation=cv2.INTER_NEAREST)
            columns.append(column)
        out.append(np.concatenate(columns, axis=1))
    return np.stack(out)


def _summary(video: Path, runs: list[ModelRun], probes: dict, top_k: int) -> dict:
    from ..views import top_k as top_classes

    models = {}
    for run in runs:
        names = run.checkpoint.config.class_names
        entry = {
            "checkpoint": str(run.checkpoint.path),
            "frame_indices": run.frame_indices,
            "top_k": [{"class": n, "p": p} for _, n, p in top_classes(run.probs, names, top_k)],
            "integrated_gradients": {
                "target": names[run.ig.target], "steps": run.ig.steps, "score": run.ig.score,
                "baseline_score": run.ig.baseline_score, "delta": run.ig.delta, "mass": run.ig.mass.tolist(),
            },
            "grad_cam_share": run.cam.mass.tolist(),
            "occlusion_drop": run.occlusion.drop.tolist(),
            "knockout": [
                {"component": r.component.label, "logit_change": r.score_change, "p_change": r.probability_change,
                 "top1_after": names[r.top1_after]}
                for r in run.knockouts
            ],
        }
        probe = probes.get(run.name)
        if probe is not None:
            entry["order_probe"] = {
                order: {"frames": probe.orders[order], "top1": names[probe.top1[i]],
                        "p_original_top1": float(probe.target_probabilities[i]),
                        "max_logit_change": probe.max_logit_change(order)}
                for i, order in enumerate(probe.orders)
            }
        models[run.name] = entry
    return {"video": str(video), "models": models}


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 14), (0, 0, 0), thickness=-1)
    ascii_text = text.encode("ascii", "replace").decode("ascii")[: max(4, out.shape[1] // 7)]
    cv2.putText(out, ascii_text, (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return out




# --------------------------------------------------------------------------- the export


def export_video(
    video: str | Path,
    checkpoints: dict[str, Checkpoint],
    out: str | Path,
    options: ExportOptions | None = None,
    progress=None,
    pngs: PngWriter | None = None,
) -> VideoExport:
    """Every view's figures (PNG + one HTML page), the overlay MP4 and a summary for one video.

    `checkpoints`: display name -> loaded checkpoint (models are only read;
    interpretation runs on private copies). `progress`: a tqdm bar advanced by
    one step per stage (`export_steps` of them), or None. `pngs`: an open
    PngWriter to share (`export` keeps one for all its videos); None opens one
    for this video. Raises VideoError for a bad video.

    When torch leaves a core free, the browser starts at once and draws each
    model's figures while the next model runs; when torch's threads take every
    core, the browser waits for the models (drawing beside them, it made torch's
    OpenMP threads spin: one bench_export run took 21.7 s at 2 threads, 16.2 s at 1).
    """
    from .. import interpret

    options = options or ExportOptions()
    video = Path(video)
    result = VideoExport(video, Path(out) / _slug(video.stem))
    step = _stepper(progress, video)
    clips: dict[ClipSpec, object] = {}
    runs, entries = [], []
    with nullcontext(pngs) if pngs is not None else png_session(options.browser) as writer:
        drawing = _Drawing(writer, result.folder, now=_a_core_is_free())
        for name, checkpoint in checkpoints.items():
            spec = checkpoint.config.clip_spec()
            if spec not in clips:
                clips[spec] = read_clip(video, spec, untrusted=options.untrusted, decoder=options.decoder)
            runs.append(_run_model(name, checkpoint, clips[spec], options, step))
            entries += drawing.add(model_entries(runs[-1], options.top_k))
        probes = {run.name: interpret.order_probe_one(run.checkpoint.model, run.clip, options.seed) for run in runs}
        step("order probe")
        entries += drawing.add(order_entries(runs, probes))
        drawing.flush()
        _write_files(result, runs, probes, entries, out, options, step)
        for view in VIEWS:
            result.files += drawing.done(view)
            step(f"{view} figures")
    if writer is None:
        result.note = NO_BROWSER_NOTE
    return result


def _a_core_is_free() -> bool:
    return torch.get_num_threads() < len(os.sched_getaffinity(0))


def _stepper(progress, video: Path):
    def step(label: str) -> None:
        if progress is not None:
            progress.set_postfix_str(f"{video.name}: {label}", refresh=False)
            progress.update(1)
    return step


class _Drawing:
    """One video's PNGs: handed to the writer as they are added (`now`) or at `flush`, a Future per view."""

    def __init__(self, writer: PngWriter | None, folder: Path, now: bool) -> None:
        self.writer, self.folder, self.now = writer, folder, now
        self.pending: list[FigureEntry] = []
        self.futures: dict[str, list] = {view: [] for view in VIEWS}
        if writer is not None and now:
            writer.start()

    def add(self, entries: list[FigureEntry]) -> list[FigureEntry]:
        self.pending += entries
        if self.now:
            self.flush()
        return entries

    def flush(self) -> None:
        if self.writer is not None:
            for view in VIEWS:
                in_view = [(e.figure, self.folder / e.view / f"{e.key}.png") for e in self.pending if e.view == view]
                if in_view:
                    self.futures[view].append(self.writer.write(in_view))
        self.pending = []

    def done(self, view: str) -> list[Path]:
        """The view's PNG paths, once drawn."""
        try:
            return [path for future in self.futures[view] for path in future.result()]
        except Exception as error:  # noqa: BLE001 - kaleido and the browser raise their own types
            raise ExportError(f"PNG export failed: {type(error).__name__}: {error}") from error


def _write_files(result: VideoExport, runs, probes, entries, out, options: ExportOptions, step) -> None:
    """figures.html, attention.mp4 and summary.json (written while the browser draws the PNGs)."""
    js_path = Path(out) / PLOTLY_JS if options.plotlyjs == "shared" else None
    title = f"GTA Lens: {result.video.name}"
    result.files.append(write_html(entries, VIEW_TITLES, result.folder / "figures.html", title, options.plotlyjs, js_path))
    step("HTML page")
    result.files.append(write_mp4(overlay_frames(runs), result.folder / "attention.mp4"))
    step("MP4")
    summary = result.folder / "summary.json"
    summary.write_text(json.dumps(_summary(result.video, runs, probes, options.top_k), indent=2) + "\n")
    result.files.append(summary)


def export_steps(videos: int, models: int) -> int:
    """Progress steps of an export: per video, MODEL_STEPS per model, one per view, VIDEO_STEPS."""
    return videos * (models * MODEL_STEPS + len(VIEWS) + VIDEO_STEPS)


def list_videos(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ExportError(f"{path}: no such video or folder")
    videos = find_videos(path)
    if not videos:
        raise ExportError(f"{path}: no videos ({', '.join(VIDEO_SUFFIXES)}) in this folder")
    return videos


def export(
    checkpoint_paths: list[str | Path],
    source: str | Path,
    out: str | Path,
    options: ExportOptions | None = None,
    show_progress: bool = True,
) -> tuple[list[VideoExport], dict[str, str]]:
    """Export every video of `source` (a file or a folder, searched recursively).

    Returns the exports and {video: message} for the videos that failed (a bad
    video does not stop the others). One browser draws the PNGs of all videos.
    Raises CheckpointError / ExportError.
    """
    from tqdm import tqdm

    options = options or ExportOptions()
    out = Path(out)
    videos = list_videos(Path(source))
    with png_session(options.browser) as pngs:          # one browser for every video
        checkpoints = {}
        for path in checkpoint_paths:
            name = Path(path).name
            while name in checkpoints:
                name += "_"
            checkpoints[name] = load_checkpoint(path, device=options.device)
        out.mkdir(parents=True, exist_ok=True)
        if options.plotlyjs == "shared":
            import plotly.offline

            (out / PLOTLY_JS).write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
        done, failed = [], {}
        total = export_steps(len(videos), len(checkpoints))
        with tqdm(total=total, desc="export", unit="step", disable=not show_progress, file=sys.stderr,
                  miniters=1, mininterval=0) as bar:             # every stage shows (few, long steps)
            for index, video in enumerate(videos):
                try:
                    done.append(export_video(video, checkpoints, out, options, progress=bar, pngs=pngs))
                except VideoError as error:
                    failed[str(video)] = str(error)
                bar.n = export_steps(index + 1, len(checkpoints))       # a failed video skips its remaining steps
                bar.refresh()
    return done, failed
