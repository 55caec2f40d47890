"""Datasets for the app: clip lists for the "Dataset" video source, compare reports for the Dataset view.

A report comes from `gta_core.comparison` and its disk cache, the same one the
CLI uses: a report made by `python -m gta_core compare` opens here at once,
and one made here makes the CLI's next run instant. A computation loads its
own copies of the checkpoints (not engine.load_model's shared models) and
takes no lock, so it never holds up another session's views; the page shows
its progress.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import streamlit as st

from gta_core import comparison
from gta_core.data.ssv2 import SSv2Dataset

from .settings import MAX_LISTED_VIDEOS, SAMPLE_DATASET

SPLITS = ("validation", "train")


@dataclass(frozen=True)
class DatasetClip:
    label: str              # "validation/123": the clip's name in the sidebar and in a shared link
    path: Path
    class_name: str


def dataset_names(roots: tuple[Path, ...]) -> dict[str, Path]:
    """Dataset folders by the name the app shows: the folder's name, its path where two names clash."""
    names = [root.name for root in roots]
    return {(root.name if names.count(root.name) == 1 else str(root)): root for root in roots}


def is_bundled(root: Path) -> bool:
    """The project's own sample set: its files are decoded without the child-process probe."""
    return root.resolve() == SAMPLE_DATASET.resolve()


def _json_mtime(root: Path) -> int:
    """Changes when any of the dataset's JSON lists does (a new split file, relabelled clips)."""
    return max((p.stat().st_mtime_ns for p in root.glob("*.json")), default=0)


@st.cache_data(show_spinner=False, max_entries=32)
def _index(root: str, split: str, mtime_ns: int) -> tuple[list[str], list[DatasetClip]]:
    dataset = SSv2Dataset(root, split)
    clips = [DatasetClip(f"{split}/{vid}", path, dataset.class_names[label]) for path, label, vid in dataset.samples]
    return dataset.class_names, clips


def dataset_index(root: Path, split: str) -> tuple[list[str], list[DatasetClip]]:
    """(class names, clips) of a split; FileNotFoundError / ValueError / KeyError for a folder that is not one."""
    return _index(str(root), split, _json_mtime(root))


def listed_clips(root: Path, wanted: str | None = None) -> list[DatasetClip]:
    """The clips of every split (validation first), at most MAX_LISTED_VIDEOS, plus `wanted` if it lies beyond."""
    clips: list[DatasetClip] = []
    for split in SPLITS:
        try:
            clips += dataset_index(root, split)[1]
        except FileNotFoundError:
            continue            # a dataset without this split
    shown = clips[:MAX_LISTED_VIDEOS]
    extra = [clip for clip in clips[MAX_LISTED_VIDEOS:] if clip.label == wanted]
    return shown + extra


def cached_report(request: comparison.CompareRequest) -> dict | None:
    """The report from the disk cache, or None when it has not been computed."""
    report = comparison.read_cached(comparison.default_cache_dir(), comparison.cache_key(request))
    return None if report is None else comparison.locate(report, request)


def compute_report(request: comparison.CompareRequest, progress: Callable[[int, int], None]) -> dict:
    """Run the comparison (loading private copies of the checkpoints) and cache it on disk."""
    report, _ = comparison.compare_cached(request, comparison.default_cache_dir(), progress=progress)
    return report
