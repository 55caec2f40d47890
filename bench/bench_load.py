"""Load test of the app server: several browser sessions, each with two SlowFast-NL models on its own video.

    .venv/bin/python bench/bench_load.py [--sessions 4] [--model slowfast_r50_nl] [--cache-mb 3000]
    .venv/bin/python bench/bench_load.py --model demo_slowfast_r50_nl --frames 32 --size 112   # a quick run

What it does, in one run: writes `--sessions` different videos and two
random-weight checkpoints of `--model`; starts `gta-lens app` (the app as
`make run` serves it) with the byte budget `--cache-mb` for its model and
capture caches; opens one Chromium page per session at the Query point view
with both models and that session's video (all pages at once, so the
sessions' runs overlap as real users' would); then, in each page, moves the
query point once (a new query must not rerun the models). It samples the
server's resident memory every 0.25 s and prints, per session, the seconds
to the first figures and to the new query, whether any error box showed, and
the server's peak RSS against the budget.

The peak RSS includes Python, torch and Streamlit themselves and what a run
holds while it computes (activations), which the cache budget does not count:
the budget bounds what the caches keep between runs.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from gta_core import CheckpointConfig, create_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def write_video(path: Path, frames: int, size: int, seed: int) -> None:
    import cv2

    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (size, size))
    for t in range(frames):
        frame = np.full((size, size, 3), 40, np.uint8)
        x = int((t / max(1, frames - 1)) * (size - size // 4))
        frame[size // 3: size // 3 + size // 4, x: x + size // 4] = rng.integers(80, 255, 3)
        writer.write(frame)
    writer.release()


def make_checkpoint(folder: Path, model_name: str, frames: int, size: int, seed: int) -> None:
    import torch

    torch.manual_seed(seed)     # random weights: what is measured is memory, and attention is recorded all the same
    model = create_model(model_name, num_classes=10, num_frames=frames, input_size=size)
    config = CheckpointConfig(
        architecture=model.config.to_dict(), class_names=[f"class {i}" for i in range(10)], model_name=model_name,
        input_size=size, resize_shorter=size, provenance={"random_weights": True, "made_by": "bench/bench_load.py"},
    )
    save_checkpoint(folder, model, config)


class RssSampler(threading.Thread):
    """The resident memory (MB) of a process, sampled every 0.25 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self._done = pid, [], threading.Event()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.samples.append((time.monotonic(), self.rss_mb()))
            except OSError:
                return
            time.sleep(0.25)

    def stop(self) -> float:
        self._done.set()
        self.join(timeout=5)
        return max(mb for _, mb in self.samples)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the app did not answer its health check")


def drive(url: str, sessions: list[str], models: list[str], timeout_s: float) -> list[dict]:
    from playwright.sync_api import sync_playwright

    timeout_ms = int(timeout_s * 1000)
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            pages, started = [], time.monotonic()
            for video in sessions:                          # all sessions start at once
                page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
                query = "&".join([f"source=Folder&video={video}", *[f"models={m}" for m in models], "view=query"])
                page.goto(f"{url}/query?{query}", wait_until="domcontentloaded")
                pages.append(page)
            for video, page in zip(sessions, pages):
                row = {"video": video}
                page.locator("[data-testid='stMain'] .js-plotly-plot").first.wait_for(timeout=timeout_ms)
                page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=timeout_ms)
                row["first_figures_s"] = round(time.monotonic() - started, 1)
                row["errors"] = (page.locator("[data-testid='stException']").count()
                                 + page.locator("[data-testid='stAlertContentError']").count())
                results.append(row)
            for row, page in zip(results, pages):            # a new query point: records answer, no model reruns
                begun = time.monotonic()
                slider = page.get_by_role("slider").first
                slider.focus()
                page.keyboard.press("ArrowRight")
                page.wait_for_timeout(300)
                page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=timeout_ms)
                row["new_query_s"] = round(time.monotonic() - begun, 2)
                row["errors"] += (page.locator("[data-testid='stException']").count()
                                  + page.locator("[data-testid='stAlertContentError']").count())
        finally:
            browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--model", default="slowfast_r50_nl")
    parser.add_argument("--frames", type=int, default=None, help="clip length (default: the variant's)")
    parser.add_argument("--size", type=int, default=None, help="crop side (default: the variant's)")
    parser.add_argument("--cache-mb", type=float, default=3000, help="the app's cache budget (--cache-mb)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a session may wait for its figures")
    args = parser.parse_args()

    from gta_core import model_config

    variant = model_config(args.model)
    frames, size = args.frames or variant.num_frames, args.size or variant.input_size
    work = Path(tempfile.mkdtemp(prefix="gta-lens-load-"))
    videos, checkpoints = work / "videos", work / "checkpoints"
    videos.mkdir()
    for i in range(args.sessions):
        write_video(videos / f"session_{i}.mp4", frames=frames + 8 * i, size=size, seed=i)
    models = [f"{args.model}_a", f"{args.model}_b"]
    for seed, name in enumerate(models):
        make_checkpoint(checkpoints / name, args.model, frames, size, seed)

    port, env = free_port(), {k: v for k, v in os.environ.items() if not k.startswith("GTA_LENS_")}
    env.update(GTA_LENS_CHECKPOINTS=str(checkpoints), GTA_LENS_VIDEOS=str(videos), GTA_LENS_CACHE=str(work / "cache"),
               GTA_LENS_CACHE_MB=str(args.cache_mb))
    script = Path(sys.executable).parent / "gta-lens"
    server = subprocess.Popen([str(script), "app", "--port", str(port)], cwd=work, env=env,
                              stdout=open(work / "server.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        time.sleep(2)
        sampler = RssSampler(server.pid)
        idle_mb = sampler.rss_mb()
        sampler.start()
        rows = drive(url, [f"session_{i}.mp4" for i in range(args.sessions)], models, args.timeout)
        peak_mb = sampler.stop()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for row in rows:
        print(f"{row['video']}: figures after {row['first_figures_s']} s, new query {row['new_query_s']} s, "
              f"errors {row['errors']}")
    print(f"{args.sessions} sessions × {len(models)} {args.model} ({frames}×{size}²): server RSS at start "
          f"{idle_mb:.0f} MB (before torch loads), peak {peak_mb:.0f} MB ({peak_mb / args.cache_mb:.2f}× the "
          f"{args.cache_mb:.0f} MB cache budget); errors {sum(r['errors'] for r in rows)}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_load.json").write_text(json.dumps(
        {"model": args.model, "frames": frames, "size": size, "sessions": rows, "idle_mb": idle_mb,
         "peak_mb": peak_mb, "budget_mb": args.cache_mb}, indent=1))
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
