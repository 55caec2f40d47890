"""The Something-Something v2 layout as a torch Dataset.

As distributed:

    ROOT/something-something-v2-labels.json       {"Approaching something with your camera": "0", ...}
    ROOT/something-something-v2-train.json        [{"id": "78687", "label": "...",
    ROOT/something-something-v2-validation.json     "template": "Holding [something] next to [something]",
                                                    "placeholders": [...]}, ...]
    ROOT/20bn-something-something-v2/{id}.webm

The short names labels.json / train.json / validation.json and a videos/ folder
(what `python -m gta_core synth` writes) are accepted too. A sample's class is
its template with the brackets removed, looked up in the labels file (SSv2's own
rule: the "label" field has the objects filled in).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from gta_core.video import ClipSpec, VideoLimits, read_clip

SPLITS = ("train", "validation")
_LABEL_FILES = ("something-something-v2-labels.json", "labels.json")
_VIDEO_DIRS = ("20bn-something-something-v2", "videos")
_VIDEO_EXTS = (".webm", ".mp4")


def _first_existing(root: Path, names) -> Path:
    for name in names:
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(f"{root} has none of {list(names)}")


def template_to_class(template: str) -> str:
    return template.replace("[", "").replace("]", "")


class SSv2Dataset(Dataset):
    """Yields (clip (3, T, H, W) float32, label index).

    root: the folder holding the JSON files. videos_dir: where {id}.webm live
    (default: ROOT/20bn-something-something-v2 or ROOT/videos). train: random
    TSN offsets (default: split == "train"); each item then draws from
    default_rng([seed, index, epoch]) where `set_epoch` sets the epoch, so runs
    repeat and DataLoader workers do not share a stream.
    An unreadable video raises VideoError naming the file; the training loop
    decides whether to skip it.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        spec: ClipSpec = ClipSpec(),
        train: bool | None = None,
        videos_dir: str | os.PathLike | None = None,
        limits: VideoLimits = VideoLimits(),
        decoder: str = "auto",
        seed: int = 0,
        views: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.spec = spec
        self.train = split == "train" if train is None else train
        self.limits = limits
        self.decoder = decoder
        self.seed = seed
        self.epoch = 0
        # Test-time views (spec.num_views > 1): items are (V, 3, T, H, W); evaluate averages their logits.
        self.views = views and not self.train and spec.num_views > 1

        labels = json.loads(_first_existing(self.root, _LABEL_FILES).read_text())
        order = sorted(labels.items(), key=lambda kv: int(kv[1]))
        if [int(v) for _, v in order] != list(range(len(order))):
            raise ValueError("the labels file's indices must be 0..N-1")
        self.class_names: list[str] = [name for name, _ in order]
        index = {name: i for i, name in enumerate(self.class_names)}

        rows = json.loads(
            _first_existing(self.root, (f"something-something-v2-{split}.json", f"{split}.json")).read_text()
        )
        self.videos_dir = Path(videos_dir) if videos_dir else _first_existing(self.root, _VIDEO_DIRS)
        self.samples: list[tuple[Path, int, str]] = []
        for row in rows:
            name = template_to_class(row["template"])
            if name not in index:
                raise KeyError(f"video {row['id']}: class {name!r} is not in the labels file")
            self.samples.append((self._video_path(str(row["id"])), index[name], str(row["id"])))

    def _video_path(self, video_id: str) -> Path:
        for ext in _VIDEO_EXTS:
            path = self.videos_dir / f"{video_id}{ext}"
            if path.exists():
                return path
        return self.videos_dir / f"{video_id}.webm"  # read_clip reports it missing

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label, _ = self.samples[i]
        rng = np.random.default_rng([self.seed, i, self.epoch]) if self.train else None
        clip = read_clip(path, self.spec, train=self.train, rng=rng, limits=self.limits, decoder=self.decoder,
                         all_views=self.views)
        return (clip.views if self.views else clip.tensor), label
