"""Where the app looks for videos, checkpoints and datasets.

Command line (after `--`):  streamlit run app/main.py -- --videos DIR --checkpoints DIR [DIR ...] --data DIR
Environment (os.pathsep-separated lists):
    GTA_LENS_ASSETS       bundled videos (default: assets/, see gta_core.bundle)
    GTA_LENS_VIDEOS       user video folders, shown as the "Folder" source
    GTA_LENS_CHECKPOINTS  checkpoint roots (default: checkpoints/); --checkpoints adds to them
    GTA_LENS_DATA         dataset folders (SSv2 layout) for the Dataset view and the "Dataset" video
                          source; --data adds to them; none given: the bundled assets/sample_dataset
    GTA_LENS_RECORDS_DTYPE / --records-dtype   float32 (default) or float16: how captured records are
                          kept (on the CPU). float16 halves them; every weight a view shows moves by at
                          most 1e-2 (measured max 7.5e-3, SlowFast-R50 NL res4; under 1e-4 elsewhere:
                          tests/test_lazy_records.py, docs/records.md)
    GTA_LENS_CACHE_MB / --cache-mb   the byte budget of cached models and captures, shared by all
                          sessions (default: a quarter of the machine's memory; app/memory.py)
Bundled assets are the project's own files; videos from user folders and
uploads are probed in a child process before anything decodes them.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from gta_core.bundle import assets_dir, checkpoints_dir
from gta_core.records import RECORD_DTYPES
from gta_core.video import find_videos

MAX_LISTED_VIDEOS = 500
UPLOAD_LIMIT_BYTES = 64 * 1024 * 1024   # keep equal to server.maxUploadSize in .streamlit/config.toml
SAMPLE_DATASET = assets_dir() / "sample_dataset"
DATASET_LABEL_FILES = ("labels.json", "something-something-v2-labels.json")
RECORDS_DTYPES = tuple(RECORD_DTYPES)


@dataclass(frozen=True)
class Settings:
    assets: tuple[Path, ...]
    video_folders: tuple[Path, ...]
    checkpoint_roots: tuple[Path, ...]
    datasets: tuple[Path, ...] = (SAMPLE_DATASET,)
    records_dtype: str = "float32"            # one of RECORD_DTYPES (gta_core.records)
    cache_bytes: int | None = None            # None: app.memory.default_budget()


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
    parser.add_argument("--records-dtype", choices=RECORDS_DTYPES, default=os.environ.get("GTA_LENS_RECORDS_DTYPE"))
    parser.add_argument("--cache-mb", type=float, default=os.environ.get("GTA_LENS_CACHE_MB"))
    args, _ = parser.parse_known_args(argv)
    if args.records_dtype not in (None, *RECORDS_DTYPES):
        raise SystemExit(f"GTA_LENS_RECORDS_DTYPE must be one of {', '.join(RECORDS_DTYPES)}, got {args.records_dtype!r}")
    assets = _env_paths("GTA_LENS_ASSETS") or [assets_dir()]
    videos = (_env_paths("GTA_LENS_VIDEOS") or []) + [Path(p).expanduser() for p in args.videos]
    roots = _env_paths("GTA_LENS_CHECKPOINTS") or [checkpoints_dir()]
    roots += [Path(p).expanduser() for p in args.checkpoints]
    datasets = (_env_paths("GTA_LENS_DATA") or []) + [Path(p).expanduser() for p in args.data]
    datasets = tuple(dict.fromkeys(datasets or [SAMPLE_DATASET]))
    cache_bytes = int(float(args.cache_mb) * 2**20) if args.cache_mb is not None else None
    return Settings(tuple(assets), tuple(videos), tuple(dict.fromkeys(roots)), datasets,
                    args.records_dtype or "float32", cache_bytes)


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
