"""Where the app looks for videos, checkpoints and datasets.

Command line (after `--`):  streamlit run app/main.py -- --videos DIR --checkpoints DIR [DIR ...] --data DIR
Environment (os.pathsep-separated lists):
    GTA_LENS_ASSETS       bundled videos (default: assets/, see gta_core.bundle)
    GTA_LENS_VIDEOS       user video folders, shown as the "Folder" source
    GTA_LENS_CHECKPOINTS  checkpoint roots (default: checkpoints/); --checkpoints adds to them
    GTA_LENS_DATA         dataset folders (SSv2 layout) for the Dataset view and the "Dataset" video
                          source; --data adds to them; none given: the bundled assets/sample_dataset
Bundled assets are the project's own files; videos from user folders and
uploads are probed in a child process before anything decodes them.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from gta_core.bundle import assets_dir, checkpoints_dir
from gta_core.video import find_videos

MAX_LISTED_VIDEOS = 500
UPLOAD_LIMIT_BYTES = 64 * 1024 * 1024   # keep equal to server.maxUploadSize in .streamlit/config.toml
SAMPLE_DATASET = assets_dir() / "sample_dataset"
DATASET_LABEL_FILES = ("labels.json", "something-something-v2-labels.json")


@dataclass(frozen=True)
class Settings:
    assets: tuple[Path, ...]
    video_folders: tuple[Path, ...]
    checkpoint_roots: tuple[Path, ...]
    datasets: tuple[Path, ...] = (SAMPLE_DATASET,)


def _env_paths(name: str) -> list[Path] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def load_settings(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(prog="app/main.py", add_help=False)
    parser.add_argument("--videos", nargs="*", default=[])
    parser.add_argument("--checkpoints", nargs="*", default=[])
    parser.add_argument("--data", nargs="*", default=[])
    args, _ = parser.parse_known_args(argv)
    assets = _env_paths("GTA_LENS_ASSETS") or [assets_dir()]
    videos = (_env_paths("GTA_LENS_VIDEOS") or []) + [Path(p).expanduser() for p in args.videos]
    roots = _env_paths("GTA_LENS_CHECKPOINTS") or [checkpoints_dir()]
    roots += [Path(p).expanduser() for p in args.checkpoints]
    datasets = (_env_paths("GTA_LENS_DATA") or []) + [Path(p).expanduser() for p in args.data]
    datasets = tuple(dict.fromkeys(datasets or [SAMPLE_DATASET]))
    return Settings(tuple(assets), tuple(videos), tuple(dict.fromkeys(roots)), datasets)


def is_dataset(folder: Path) -> bool:
    """A folder in the Something-Something v2 layout (a labels file beside the split lists)."""
    return any((folder / name).is_file() for name in DATASET_LABEL_FILES)


def list_videos(folder: Path, skip_datasets: bool = False) -> list[Path]:
    """Video files under `folder` (recursively), sorted, at most MAX_LISTED_VIDEOS.

    skip_datasets: leave out videos inside a dataset folder (the bundled sample set
    is browsed through the "Dataset" source, clip by clip with its split and class).
    The app reads this through `engine.listed_videos`, which does not walk the folder on every rerun.
    """
    def keep(path: Path) -> bool:
        return not (skip_datasets and (is_dataset(path.parent) or is_dataset(path.parent.parent)))

    return find_videos(folder, keep, MAX_LISTED_VIDEOS)


def checkpoint_folders(roots: tuple[Path, ...]) -> list[Path]:
    """Each root that is a checkpoint folder, and each sub-folder of a root that has a config.json."""
    found: list[Path] = []
    for root in roots:
        if (root / "config.json").is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(p for p in root.iterdir() if (p / "config.json").is_file()))
    return list(dict.fromkeys(found))
