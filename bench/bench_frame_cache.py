"""Memory of building the training frame cache: the peak Python/numpy heap against the file it writes.

    python bench/bench_frame_cache.py [--videos-per-class 2 6]

Generates the synthetic temporal set (16 frames, 128×170) with N videos per
class, builds the training split's cache at 128 px, and prints the file size
and tracemalloc's peak (numpy arrays are traced). The cache is written one
video at a time, so the peak stays flat as the split grows; a cache that held
every clip before writing (the format before issue 23) peaked at the file size
(measured then: 21.7 MB for 15 videos, 68.9 MB for 75).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gta_core.data import synth  # noqa: E402
from gta_core.data.cache import build_frame_cache  # noqa: E402
from gta_core.data.ssv2 import SSv2Dataset  # noqa: E402
from gta_core.video import ClipSpec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos-per-class", type=int, nargs="+", default=[2, 6])
    args = parser.parse_args()
    for per_class in args.videos_per_class:
        with tempfile.TemporaryDirectory() as tmp:
            root = synth.generate(Path(tmp) / "data", seed=3, videos_per_class=per_class, size="128x170",
                                  frames=16, workers=1)
            source = SSv2Dataset(root, "train", ClipSpec(8, 112, 128), train=False)
            tracemalloc.start()
            start = time.perf_counter()
            path = build_frame_cache(source, 128, 64, Path(tmp) / "cache", progress=False)
            seconds = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"{len(source):4d} videos: file {path.stat().st_size / 1e6:6.1f} MB, "
                  f"peak heap {peak / 1e6:5.1f} MB, {seconds:5.1f} s")


if __name__ == "__main__":
    main()
