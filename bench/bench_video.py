"""Milliseconds to read a T=8 clip: decord against PyAV, median of several runs.

    .venv/bin/python bench/bench_video.py [--runs 7]

Inputs: a 5 s 240p WebM (VP9, 426x240, 25 fps, 125 frames; written to a temp
folder) and the 720p real clip assets/real/big_buck_bunny_720p.mp4 (H.264,
1280x720, 132 frames). Each read is the whole read_clip path: header checks,
decoding, the frame count, resize to 256 / crop 224, normalisation. Results go
to stdout and bench/results/bench_video.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]

from gta_core.data.synth import encode_webm, render, VideoPlan  # noqa: E402
from gta_core.video import ClipSpec, read_clip  # noqa: E402

SPEC = ClipSpec(num_frames=8, input_size=224, resize_shorter=256)


def make_240p_webm(folder: Path) -> Path:
    """125 synthetic frames at 426x240 (a left-to-right move, re-rendered per frame)."""
    frames = render(VideoPlan("temporal", 0, (0, 0, 0, 0), 240, 426, 125))[0]
    path = folder / "synthetic_240p_5s.webm"
    encode_webm(frames, path, fps=25)
    return path


def time_reads(path: Path, decoder: str, runs: int) -> list[float]:
    read_clip(path, SPEC, decoder=decoder)  # warm-up: imports, caches
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        clip = read_clip(path, SPEC, decoder=decoder)
        out.append((time.perf_counter() - t) * 1000)
        assert clip.decoder == decoder
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {"240p webm, 5 s (VP9)": make_240p_webm(Path(tmp)),
                  "720p mp4, Big Buck Bunny (H.264)": ROOT / "assets/real/big_buck_bunny_720p.mp4"}
        print(f"read_clip T=8, resize 256, crop 224; median of {args.runs} runs (ms)")
        for name, path in inputs.items():
            row = {"input": name}
            for decoder in ("decord", "pyav"):
                ms = time_reads(path, decoder, args.runs)
                row[decoder] = {"median_ms": round(statistics.median(ms), 1), "runs_ms": [round(m, 1) for m in ms]}
            results.append(row)
            print(f"  {name:36s} decord {row['decord']['median_ms']:7.1f}   pyav {row['pyav']['median_ms']:7.1f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_video.json").write_text(json.dumps(
        {"machine": platform.platform(), "python": platform.python_version(),
         "cpus": len(__import__("os").sched_getaffinity(0)), "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
