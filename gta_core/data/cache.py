"""A frame cache for training: every video of a split decoded once into one memory-mapped array.

`python -m gta_core train --cache-frames` decodes each split into
`DATA/.frame_cache/` (uint8, at the resize side, square) and draws the TSN
offsets and a random crop from it, so an epoch costs no decoding. Validation
through the cache gives the same pixels as `read_clip` (centre frames, centre
crop of the same resize).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..video import ClipSpec, normalise, read_clip, temporal_sample_indices

CACHE_DIR = ".frame_cache"


def _crop_normalise(frames: np.ndarray, crop: int, top: int, left: int, mean, std) -> torch.Tensor:
    return normalise(frames[:, top:top + crop, left:left + crop], mean, std)   # (T, S, S, 3) -> (3, T, s, s)


class CachedClips(Dataset):
    """An SSv2Dataset's videos decoded once: frames (N, F, S, S, 3) uint8 on disk, memory-mapped.

    Each video is read with `read_clip` at resize_shorter = input side = S (the
    centre square of the resized frames) and all its frames (up to F_max, spread
    TSN-style when longer). Items: training takes a random frame per TSN segment
    and a random crop, from default_rng([seed, index, epoch]); testing takes the
    centre frame per segment and the centre crop, which equals read_clip's
    test-mode output for the same config.
    """

    def __init__(self, source, cache_file: Path, num_frames: int, input_size: int, train: bool, seed: int = 0):
        meta = json.loads(cache_file.with_suffix(".json").read_text())
        self.frames = np.load(cache_file, mmap_mode="r")          # (N, F, S, S, 3)
        self.counts = np.asarray(meta["counts"])
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
        side = self.frames.shape[2]
        crop = self.input_size
        if self.train:
            rng = np.random.default_rng([self.seed, i, self.epoch])
            idx = temporal_sample_indices(int(self.counts[i]), self.num_frames, True, rng)
            top, left = (int(v) for v in rng.integers(0, side - crop + 1, size=2))
        else:
            idx = temporal_sample_indices(int(self.counts[i]), self.num_frames, False)
            top = left = (side - crop) // 2
        frames = np.asarray(self.frames[i, idx])
        return _crop_normalise(frames, crop, top, left, self.mean, self.std), self.samples[i][1]


def build_frame_cache(source, side: int, max_frames: int, cache_dir: Path, progress: bool = True) -> Path:
    """Decode every video of `source` (an SSv2Dataset) once; return the .npy path (reused if built)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{source.split}_{side}px_max{max_frames}f.npy"
    meta_path = path.with_suffix(".json")
    ids = [s[2] for s in source.samples]
    if path.is_file() and meta_path.is_file() and json.loads(meta_path.read_text()).get("ids") == ids:
        return path
    clips, counts = [], []
    items = source.samples
    if progress:
        from tqdm import tqdm

        items = tqdm(items, desc=f"caching {source.split} frames", mininterval=5)
    for video_path, _, _ in items:
        spec = ClipSpec(max_frames, side, side, source.spec.mean, source.spec.std)
        clip = read_clip(video_path, spec, train=False, decoder=source.decoder, limits=source.limits)
        count = clip.num_decoded_frames
        if count < max_frames:
            # TSN centres of `max_frames` segments over count <= max_frames frames hit every
            # frame at least once: keep the first copy of each, in order (no repeats).
            first = {index: k for k, index in reversed(list(enumerate(clip.frame_indices)))}
            clips.append(clip.frames_uint8[[first[i] for i in range(count)]])
        else:
            clips.append(clip.frames_uint8)
        counts.append(min(count, max_frames))
    frames = np.lib.format.open_memmap(
        path.with_suffix(".tmp.npy"), mode="w+", dtype=np.uint8,
        shape=(len(clips), max(counts), side, side, 3),
    )
    for k, clip in enumerate(clips):
        frames[k, :len(clip)] = clip
    frames.flush()
    del frames
    path.with_suffix(".tmp.npy").replace(path)
    meta_path.write_text(json.dumps({"ids": ids, "counts": counts, "side": side}))
    return path

