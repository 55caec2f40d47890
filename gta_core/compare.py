"""Where checkpoints disagree, clip by clip: `python -m gta_core compare`.

    python -m gta_core compare CKPT [CKPT ...] --data DIR [--split validation] [--json] [--out FILE]
    torchrun --nproc_per_node 2 -m gta_core compare CKPT [CKPT ...] --data DIR

Every checkpoint runs on every clip of a split exactly as `evaluate` reads and
scores it (gta_core.evaluate.predict_logits: test-mode clips, the same batches,
the same torchrun split and gather), so its top-1 per clip is evaluate's. The
report (gta_core.disagreement) gives per checkpoint top-1 / top-5 and per-class
accuracy; per pair of checkpoints their agreement and how many clips only A,
only B or neither gets right; with reverse_pairs.json, how many errors predict
the clip's time-reversal pair; for TA / TAPE blocks, the temporal weights
averaged over the clips of each class, beside GTA's input-independent M̂.

Checkpoints that read clips the same way (one ClipSpec) share each decoded
batch: a clip is decoded once, not once per checkpoint.

The report is cached on disk, keyed by each checkpoint's folder name,
config.json and model.safetensors (sha256), the dataset's files (labels, split and reverse-pair
JSON by sha256; every video by size and mtime), the split, batch size, decoder
and device type. A second run reads it back without loading a model. Folder:
--cache-dir, else $GTA_LENS_CACHE/compare, else $XDG_CACHE_HOME/gta_lens/compare
(~/.cache/gta_lens/compare).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .records import capture
from .checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, load_checkpoint
from .data.ssv2 import SSv2Dataset
from .disagreement import build_report, text_report
from .distributed import DeviceError, DistEnv, broadcast_object, init_distributed, shutdown
from .evaluate import batch_indices, dataset_for, predict_logits, reversed_targets
from .layers import DecoupledAttention, GTABlock
from .layers.divided import DividedSpaceTimeBlock
from .video import ClipSpec, VideoError

CACHE_VERSION = 1
CACHE_ENV = "GTA_LENS_CACHE"
Progress = Callable[[int, int], None]     # (batches done, batches in all) on this rank


@dataclass(frozen=True)
class CompareRequest:
    """What one comparison computes; every field goes into the cache key."""

    checkpoints: tuple[str, ...]          # checkpoint folders, in report order
    data: str                             # dataset folder (SSv2 layout)
    split: str = "validation"
    batch_size: int = 16
    decoder: str = "auto"
    device: str = "cpu"

    def names(self) -> list[str]:
        """Checkpoint folder names, the report's column names; two alike are refused."""
        names = [_folder(path).name for path in self.checkpoints]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"two checkpoints are named {twice[0]}: the report names checkpoints by folder")
        return names


def _folder(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.name == WEIGHTS_NAME else path


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


# ---------------------------------------------------------------- the cache key


def _sha256(path: Path) -> str:
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Once per file version in a process: the app recomputes the key on every rerun of its view,
    and an R2D-50 checkpoint is 125 MB."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checkpoint_fingerprint(path: str) -> dict:
    folder = _folder(path)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise CheckpointError(
                f"{folder}: no {name} (a checkpoint is a folder with {CONFIG_NAME} and {WEIGHTS_NAME})")
    return {"config": _sha256(folder / CONFIG_NAME), "weights": _sha256(folder / WEIGHTS_NAME)}


def dataset_fingerprint(data: str | Path, split: str) -> dict:
    """The dataset's JSON files by sha256 and every video of the split by size and mtime.

    A missing video is an error here, before any model runs (under torchrun a
    failure half-way would leave the other ranks waiting).
    """
    dataset = SSv2Dataset(data, split)
    root = Path(data)
    files = {}
    for path in sorted(root.glob("*.json")):
        if path.name != "dataset_info.json":      # the generator's log (timings), not data
            files[path.name] = _sha256(path)
    videos = []
    for path, _, video_id in dataset.samples:
        if not path.is_file():
            raise FileNotFoundError(f"{data}: video {video_id} of the {split} split is missing ({path})")
        stat = path.stat()
        videos.append([_relative(path, root), stat.st_size, stat.st_mtime_ns])
    return {"files": files, "videos": videos}


def cache_key(request: CompareRequest) -> str:
    parts = {
        "version": CACHE_VERSION,
        "checkpoints": [_checkpoint_fingerprint(path) for path in request.checkpoints],
        "names": request.names(),             # the report names checkpoints by folder
        "dataset": dataset_fingerprint(request.data, request.split),
        "split": request.split,
        "batch_size": request.batch_size,
        "decoder": request.decoder,
        "device": torch.device(request.device).type,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser() / "compare"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gta_lens" / "compare"


def read_cached(cache_dir: Path, key: str) -> dict | None:
    """The cached report, or None (absent, or unreadable: then it is computed again)."""
    path = Path(cache_dir) / f"{key}.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return report if isinstance(report, dict) and report.get("cache_key") == key else None


def write_cached(cache_dir: Path, key: str, report: dict) -> Path:
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{key}.json"
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps(report), encoding="utf-8")
    partial.replace(path)       # atomic: a reader sees the old file or the whole new one
    return path


# ---------------------------------------------------------------- running the models


@dataclass(frozen=True)
class Slot:
    """A stretch of a ClipRows row: one checkpoint's logits, or one TA block's T×T weights."""

    model: int                  # index of the checkpoint in the request
    name: str                   # "logits" or a block name ("res3.1")
    shape: tuple[int, ...]      # (C,) or (T, T)


def temporal_attention_blocks(model: nn.Module) -> dict[str, str]:
    """Blocks with input-dependent temporal attention, by name, with their kind (TA, TAPE, DNL, SA+TAPE)."""
    kinds = {}
    for name, block in model.temporal_blocks().items():
        if isinstance(block, DividedSpaceTimeBlock):        # TimeSformer: TA then SA in every layer
            kinds[name] = "DIVIDED"
        elif isinstance(block, DecoupledAttention) and block.temporal is not None:
            tape = block.temporal.positional is not None
            kinds[name] = ("SA+TAPE" if tape else "DNL") if block.spatial is not None else ("TAPE" if tape else "TA")
    return kinds


class ClipRows(nn.Module):
    """Several models on one batch of clips, one flat row per clip.

    A row holds each model's logits and, for models with TA blocks, each such
    block's T×T weights averaged over pixels (read by `capture`, whose hooks
    do not change the logits). `evaluate.predict_logits` treats the rows as
    one model's logits: it runs, splits under torchrun and gathers them
    unchanged; `split` cuts them back into named arrays.
    """

    def __init__(self, models: list[nn.Module], indices: list[int], num_classes: list[int], frames: int):
        super().__init__()
        self.models = nn.ModuleList(models)
        self.blocks = [list(temporal_attention_blocks(model)) for model in models]
        self.slots = []
        for index, blocks, classes in zip(indices, self.blocks, num_classes):
            self.slots.append(Slot(index, "logits", (classes,)))
            self.slots += [Slot(index, name, (frames, frames)) for name in blocks]

    def forward(self, clips: torch.Tensor) -> torch.Tensor:   # (B, 3, T, H, W) -> (B, row width)
        parts = []
        for model, blocks in zip(self.models, self.blocks):
            if not blocks:
                parts.append(model(clips).float())
                continue
            result = capture(model, clips)
            parts.append(result.logits.float())
            for name in blocks:
                weights = result.records[name].temporal.weights            # (B, H, W, T, T)
                parts.append(weights.float().mean(dim=(1, 2)).flatten(1))    # (B, T·T)
        return torch.cat(parts, dim=1)

    def split(self, rows: np.ndarray) -> dict[tuple[int, str], np.ndarray]:
        """(N, row width) -> {(model index, slot name): (N, *shape)}."""
        out, start = {}, 0
        for slot in self.slots:
            width = int(np.prod(slot.shape))
            out[(slot.model, slot.name)] = rows[:, start:start + width].reshape(len(rows), *slot.shape)
            start += width
        if start != rows.shape[1]:
            raise ValueError(f"a row has {rows.shape[1]} values, the slots {start}")
        return out


def global_matrices(model: nn.Module) -> dict[str, dict[str, np.ndarray]]:
    """GTA blocks' learned M̂ as mean |M̂| over groups and heads (T, T), by block and label."""
    out = {}
    for name, block in model.temporal_blocks().items():
        if not isinstance(block, GTABlock):
            continue
        gta = block.temporal
        matrices = {"M̂_P": gta.pixel_matrix, "M̂_R": gta.region_matrix}
        out[name] = {
            label: m.detach().float().abs().reshape(-1, *m.shape[-2:]).mean(dim=0).cpu().numpy()
            for label, m in matrices.items() if m is not None
        }
    return out


def _shared_classes(checkpoints: list, paths: tuple[str, ...]) -> list[str]:
    first = checkpoints[0].config.class_names
    for checkpoint, path in zip(checkpoints[1:], paths[1:]):
        if set(checkpoint.config.class_names) != set(first):
            raise ValueError(f"{path} has other classes than {paths[0]}: compare needs checkpoints of one label set")
    return list(first)


def _counting(progress: Progress | None, done: int, total: int):
    """predict_logits' progress hook (it wraps the batch list) reporting (done, total) after each batch."""
    def wrap(batches):
        for offset, batch in enumerate(batches):
            yield batch
            if progress is not None:
                progress(done + offset + 1, total)
    return wrap


@dataclass
class _Group:
    """Checkpoints that read clips the same way, and the dataset that reads them so."""

    spec: ClipSpec
    indices: list[int]
    dataset: SSv2Dataset


def _groups(checkpoints: list, request: CompareRequest) -> list[_Group]:
    by_spec: dict[ClipSpec, list[int]] = {}
    for index, checkpoint in enumerate(checkpoints):
        by_spec.setdefault(ClipSpec.from_config(checkpoint.config.to_dict()), []).append(index)
    groups = [_Group(spec, indices, dataset_for(checkpoints[indices[0]], request.data, request.split, request.decoder))
              for spec, indices in by_spec.items()]
    if not len(groups[0].dataset):
        raise ValueError(f"{request.data}: the {request.split} split has no clips")
    return groups


def _run_groups(checkpoints, groups, class_names, request, env, progress) -> tuple[dict, np.ndarray]:
    """Every group's ClipRows over the split: ({(checkpoint index, slot name): array}, labels in class_names)."""
    mine = [len(batch_indices(len(g.dataset), request.batch_size)[env.rank::env.world_size]) for g in groups]
    outputs, labels, done = {}, None, 0
    for group, count in zip(groups, mine):
        stack = ClipRows([checkpoints[i].model for i in group.indices], group.indices,
                         [len(checkpoints[i].config.class_names) for i in group.indices], group.spec.num_frames)
        rows, group_labels, _ = predict_logits(
            stack, group.dataset, env, request.batch_size, progress=_counting(progress, done, sum(mine)),
        )
        done += count
        # A group's labels index its first checkpoint's classes; the report uses class_names' order.
        group_classes = checkpoints[group.indices[0]].config.class_names
        group_labels = np.array([class_names.index(group_classes[y]) for y in group_labels], dtype=np.int64)
        if labels is not None and not np.array_equal(labels, group_labels):
            raise AssertionError("two clip specs gave the dataset's clips different labels")
        labels = group_labels
        outputs.update(stack.split(rows))
    return outputs, labels


def run_comparison(request: CompareRequest, env: DistEnv = DistEnv(), progress: Progress | None = None) -> dict:
    """Run every checkpoint on the split and build the report (no cache)."""
    names = request.names()
    checkpoints = [load_checkpoint(path, device=env.device) for path in request.checkpoints]
    class_names = _shared_classes(checkpoints, request.checkpoints)
    groups = _groups(checkpoints, request)
    outputs, labels = _run_groups(checkpoints, groups, class_names, request, env, progress)
    logits = []
    for index, checkpoint in enumerate(checkpoints):
        order = [checkpoint.config.class_names.index(name) for name in class_names]
        logits.append(outputs[(index, "logits")][:, order])      # columns in the report's class order
    temporal = {
        names[i]: {block: (kind, outputs[(i, block)]) for block, kind in temporal_attention_blocks(c.model).items()}
        for i, c in enumerate(checkpoints)
    }
    root = Path(request.data)
    clips = [(vid, _relative(path, root)) for path, _, vid in groups[0].dataset.samples]
    pairs = reversed_targets(request.data, class_names, np.arange(len(class_names)))
    return build_report(
        names, class_names, labels, logits, clips, pairs, temporal,
        {names[i]: global_matrices(c.model) for i, c in enumerate(checkpoints)},
    )


def compare(
    request: CompareRequest, cache_dir: Path | None, env: DistEnv = DistEnv(), progress: Progress | None = None
) -> tuple[dict, bool]:
    """(report, whether it came from the cache). Rank 0 reads and writes the cache; every rank gets the report."""
    key = cache_key(request)
    report = read_cached(cache_dir, key) if cache_dir is not None and env.is_main else None
    report = broadcast_object(env, report)
    hit = report is not None
    if not hit:
        report = run_comparison(request, env, progress)
        report["cache_key"] = key
        if cache_dir is not None and env.is_main:
            try:
                write_cached(cache_dir, key, report)
            except OSError as error:     # a read-only or full disk costs the cache, not the report
                warnings.warn(f"compare: the report was not cached ({error})", stacklevel=2)
    return locate(report, request), hit


def locate(report: dict, request: CompareRequest) -> dict:
    """The report with this request's paths: where the files are is not part of the key."""
    report.update(data=str(request.data), checkpoint_paths=[str(p) for p in request.checkpoints])
    return report


# ---------------------------------------------------------------- the compare command


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


class _ProgressBar:
    """One tqdm bar on rank 0 (stderr), opened at the first batch: a cache hit shows none."""

    def __init__(self, env: DistEnv) -> None:
        self.env, self.bar = env, None

    def __call__(self, done: int, total: int) -> None:
        if not self.env.is_main:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"compare (rank 0 of {self.env.world_size})", unit="batch", leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        env = init_distributed(args.device, args.threads)
    except DeviceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bar = _ProgressBar(env)
    try:
        request = CompareRequest(tuple(args.checkpoints), str(args.data), args.split, args.batch_size,
                                 args.decoder, str(env.device))
        cache_dir = None if args.no_cache else Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        report, hit = compare(request, cache_dir, env, bar)
    except (CheckpointError, VideoError, FileNotFoundError, ValueError, KeyError) as error:
        if env.is_main:
            print(f"error: {error}", file=sys.stderr)
        shutdown(env)
        return 2
    finally:
        bar.close()
    code = _print_report(args, report, cache_dir if hit else None) if env.is_main else 0
    shutdown(env)
    return code


def _print_report(args: argparse.Namespace, report: dict, cached_in: Path | None) -> int:
    if cached_in is not None:
        print(f"compare: read from the cache ({cached_in / report['cache_key']}.json)", file=sys.stderr)
    if args.out:
        try:
            Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        except OSError as error:
            print(f"error: cannot write {args.out}: {error.strerror or error}", file=sys.stderr)
            return 2
    print(json.dumps(report, indent=1) if args.json else text_report(report))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="several checkpoints on one dataset: where they disagree, clip by clip",
        description="Run checkpoints on a dataset split and report accuracies, pairwise agreement, only-A / only-B "
                    "right clips and time-reversal confusions; runs under torchrun too; cached on disk.",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CKPT")
    p.add_argument("--data", required=True, help="dataset folder (SSv2 layout)")
    p.add_argument("--split", default="validation", choices=("train", "validation"))
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--out", help="also write the JSON report to this file")
    p.add_argument("--cache-dir",
                   help=f"where reports are cached (default: ${CACHE_ENV}/compare or ~/.cache/gta_lens/compare)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--batch-size", type=_positive, default=16)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--decoder", default="auto", choices=("auto", "decord", "pyav"))
    p.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: automatic)")
    p.set_defaults(func=cmd_compare)
