"""Finding the video files in a folder: one list of suffixes for the app, export and the CLI."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")


def find_videos(folder: Path, keep: Callable[[Path], bool] | None = None, limit: int | None = None) -> list[Path]:
    """Video files under `folder` (recursively, by suffix), sorted; those `keep` accepts, at most `limit`.

    A folder that does not exist has no videos.
    """
    found: list[Path] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file() and (keep is None or keep(path)):
            found.append(path)
            if limit is not None and len(found) >= limit:
                break
    return found
