"""A frame cache for training: every video of a split decoded once into one memory-mapped file.

`python -m gta_core train --cache-frames` decodes each split into
`DATA/.frame_cache/` (uint8, at the resize side, square; with the spec's
`resize_to`, the centre square of the H×W frame; another interpolation or
resize_to: a file of its own) and draws the TSN
offsets and a random crop from it, so an epoch costs no decoding.

What a video keeps: all its frames when it has at most `max_frames`; otherwise
the centres of `max_frames` TSN segments plus the T frames `read_clip` takes at
test time. So validation through the cache gives the same pixels as
`read_clip(train=False)` for every length (the centre crop of the centre square
is read_clip's centre crop when resize_shorter − input_size is even, as in
every shipped config), and training draws TSN's random frame per segment over
the real frame count, taking the kept frame at or before it, or the first kept
one (exact when all frames are kept).

The file is written one video at a time (raw uint8 rows, then a JSON index),
never holding a split in memory.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..video import ClipSpec, normalise, read_clip, temporal_sample_indices

CACHE_DIR = ".frame_cache"
CACHE_VERSION = 2     # 1 kept only the max_frames grid, so long videos were TSN-sampled twice


def _crop_normalise(frames: np.ndarray, crop: int, top: int, left: int, mean, std) -> torch.Tensor:
    return normalise(frames[:, top:top + crop, left:left + crop], mean, std)   # (T, S, S, 3) -> (3, T, s, s)


def kept_frames(count: int, max_frames: int, num_frames: int) -> list[int]:
    """The frame indices a video of `count` frames keeps in the cache, sorted, each once."""
    if count <= max_frames:
        return list(range(count))
    grid = temporal_sample_indices(count, max_frames, False)
    return sorted(set(grid) | set(temporal_sample_indices(count, num_frames, False)))


class CachedClips(Dataset):
    """An SSv2Dataset's videos decoded once: frame rows (R, S, S, 3) uint8 on disk, memory-mapped.

    Items: training takes a random frame per TSN segment of the video's real
    frame count and a random crop, from default_rng([seed, index, epoch]);
    testing takes the centre frame per segment and the centre crop, which
    equals read_clip's test-mode output for the same config.
    """

    def __init__(self, source, cache_file: Path, num_frames: int, input_size: int, train: bool, seed: int = 0):
        meta = json.loads(cache_file.with_suffix(".json").read_text())
        if meta.get("num_frames") != num_frames:
            raise ValueError(f"{cache_file} keeps the test frames of {meta.get('num_frames')}-frame clips, "
                             f"not {num_frames}; build the cache for this clip length")
        side = meta["side"]
        self.frames = np.memmap(cache_file, np.uint8, "r", shape=(meta["rows"], side, side, 3))
        self.kept = [np.asarray(k) for k in meta["kept"]]     # per video: the frame index of each row
        self.offsets = meta["offsets"]                         # per video: its first row
        self.counts = meta["counts"]                           # per video: its decoded frame count
        self.samples = source.samples
        self.class_names = source.class_names
        self.num_frames, self.input_size, self.train, self.seed = num_frames, input_size, train, seed
        self.mean, self.std = source.spec.mean, source.spec.std
        self.epoch = 0
        if [s[2] for s in self.samples] != meta["ids"]:
            raise ValueError(f"{cache_file} was built for other videos; delete it to rebuild")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        side = self.frames.shape[1]
        crop = self.input_size
        if self.train:
            rng = np.random.default_rng([self.seed, i, self.epoch])
            wanted = temporal_sample_indices(self.counts[i], self.num_frames, True, rng)
            top, left = (int(v) for v in rng.integers(0, side - crop + 1, size=2))
        else:
            wanted = temporal_sample_indices(self.counts[i], self.num_frames, False)
            top = left = (side - crop) // 2
        # The kept frame at or before each wanted one (the wanted one itself when kept); a frame
        # before the first kept one takes the first (-1 would index the previous video's rows).
        rows = np.maximum(np.searchsorted(self.kept[i], wanted, side="right") - 1, 0)
        frames = np.asarray(self.frames[self.offsets[i] + rows])
        return _crop_normalise(frames, crop, top, left, self.mean, self.std), self.samples[i][1]


def build_frame_cache(source, side: int, max_frames: int, cache_dir: Path, progress: bool = True) -> Path:
    """Decode every video of `source` (an SSv2Dataset) once; return the cache file (reused if built).

    The test frames kept are those of `source.spec.num_frames`-frame clips.
    """
    num_frames, resize_to, interpolation = source.spec.num_frames, source.spec.resize_to, source.spec.interpolation
    if source.spec.crop_rounding != "floor":
        raise ValueError("the frame cache crops as MMAction2's CenterCrop (crop_rounding 'floor'), "
                         f"not {source.spec.crop_rounding!r}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # A fixed-size resize or another interpolation gives other pixels: a file of its own (named so that
    # the default's name is the one it always had).
    fixed = f"_from{resize_to[0]}x{resize_to[1]}" if resize_to else ""
    fixed += f"_{interpolation}" if interpolation != "area" else ""
    path = cache_dir / f"{source.split}_{side}px{fixed}_max{max_frames}f_{num_frames}t.u8"
    meta_path = path.with_suffix(".json")
    ids = [s[2] for s in source.samples]
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == CACHE_VERSION and meta.get("ids") == ids:
            return path
    items = source.samples
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"caching {source.split} frames", mininterval=5)
    spec = ClipSpec(num_frames, side, side, source.spec.mean, source.spec.std, interpolation=interpolation,
                    resize_to=resize_to)
    kept, offsets, counts, rows = [], [], [], 0
    # A file of our own: two trainings that start together on one dataset each build the cache, and each
    # replace below is atomic, so a reader sees one whole file or the other (they are byte-identical).
    handle, partial_name = tempfile.mkstemp(dir=cache_dir, prefix=path.name + ".", suffix=".part")
    partial = Path(partial_name)
    with os.fdopen(handle, "wb") as out:
        for video_path, _, _ in items:
            clip = read_clip(video_path, spec, decoder=source.decoder, limits=source.limits,
                             choose=lambda count: kept_frames(count, max_frames, num_frames))
            out.write(np.ascontiguousarray(clip.frames_uint8).tobytes())      # (k, S, S, 3) rows
            kept.append(clip.frame_indices)
            offsets.append(rows)
            counts.append(clip.num_decoded_frames)
            rows += len(clip.frame_indices)
    partial.replace(path)
    meta = {"version": CACHE_VERSION, "ids": ids, "kept": kept, "offsets": offsets, "counts": counts,
            "rows": rows, "side": side, "num_frames": num_frames, "max_frames": max_frames,
            "resize_to": list(resize_to) if resize_to else None, "interpolation": interpolation}
    handle, meta_partial = tempfile.mkstemp(dir=cache_dir, prefix=meta_path.name + ".", suffix=".part")
    with os.fdopen(handle, "w") as out:
        out.write(json.dumps(meta))
    Path(meta_partial).replace(meta_path)
    return path
