"""One sha256 of a file's bytes, for cache keys (compare, the app) and provenance (importers)."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file, read once per file version (path, size, mtime) in a process.

    The app recomputes cache keys on every rerun, and an R2D-50 checkpoint is 125 MB.
    """
    stat = Path(path).stat()
    return _sha256_of_version(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1024)
def _sha256_of_version(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):     # 1 MiB at a time, never the whole file
            digest.update(block)
    return digest.hexdigest()
