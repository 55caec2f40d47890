"""Load test: 4 browser sessions, each with 2 SlowFast-R50-NL models (64×256², random weights) on its own video.

    python bench/bench_load.py [--sessions 4] [--cache-mb 3072] [--model slowfast_r50_nl]

Starts `streamlit run app/main.py -- --cache-mb N` on a free localhost port,
opens every session at once in headless chromium (one browser context each,
so each is its own Streamlit session) on the Query point view, waits until
each has drawn its figures, then clicks a new query point in each. Reports
the server's peak RSS (VmHWM of the process) against the budget, the cache's
use as the "Server" panel shows it, and any error a session saw.

The budget bounds what the caches keep (models and captures); peak RSS also
holds the torch runtime and one forward's activations (the model lock runs
one capture at a time), which no cache setting bounds: the report gives both.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.app.fixtures import make_random_checkpoint, write_video  # noqa: E402
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, serve_app  # noqa: E402


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident MB of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def wait_drawn(page, count: int, timeout_ms: int) -> list[str]:
    """Wait for `count` figures; return the errors the page shows."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=timeout_ms)
    expect(page.locator("[data-testid='stMain'] .js-plotly-plot")).to_have_count(count, timeout=timeout_ms)
    errors = page.locator("[data-testid='stException'], [data-testid='stAlertContentError']")
    return [errors.nth(i).inner_text()[:200] for i in range(errors.count())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--cache-mb", type=float, default=3072)
    parser.add_argument("--model", default="slowfast_r50_nl")
    parser.add_argument("--timeout-s", type=float, default=1800)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gta_lens_load_"))
    (work / "checkpoints").mkdir()
    (work / "videos").mkdir()
    names = ["sf_nl_a", "sf_nl_b"]
    for seed, name in enumerate(names):
        make_random_checkpoint(work / "checkpoints" / name, args.model, seed=seed)
    videos = [write_video(work / "videos" / f"clip{i}.mp4", frames=24, size=(144, 192), seed=i).name
              for i in range(args.sessions)]
    figures = 1 + len(names)                       # the query picker + one space-time row per NL model
    timeout_ms = int(args.timeout_s * 1000)
    settings = {"GTA_LENS_CHECKPOINTS": str(work / "checkpoints"), "GTA_LENS_ASSETS": str(work / "videos"),
                "OMP_NUM_THREADS": "1"}
    with serve_app(settings, ("--cache-mb", str(args.cache_mb)), deadline_s=120) as (url, server), \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        start = time.perf_counter()
        pages = []
        for video in videos:
            page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
            models = "&".join(f"models={n}" for n in names)
            page.goto(f"{url}/?source=Bundled&video={video}&{models}&view=query", wait_until="domcontentloaded")
            pages.append(page)
        seen = {video: wait_drawn(page, figures, timeout_ms) for video, page in zip(videos, pages)}
        drawn_s = time.perf_counter() - start
        query_s = []
        for page in pages:                         # a new query in every session: no model run
            slider = page.get_by_role("slider", name="x (% of width)")
            slider.focus()
            t0 = time.perf_counter()
            page.keyboard.press("ArrowRight")
            errors = wait_drawn(page, figures, timeout_ms)
            query_s.append(time.perf_counter() - t0)
            seen[videos[pages.index(page)]] += errors
        pages[0].get_by_text("Server", exact=True).first.click()      # open the sidebar's Server panel
        panel = pages[0].get_by_text(re.compile(r"cached \(")).first.inner_text(timeout=10_000)
        current, peak = peak_rss_mb(server.pid)
        browser.close()
    print(f"{args.sessions} sessions × {len(names)} {args.model} (random weights) at its default input, "
          f"one shared CPU; all drawn after {drawn_s:.0f} s; a new query per session: "
          + ", ".join(f"{s:.1f} s" for s in query_s))
    print(f"server RSS: now {current:.0f} MB, peak {peak:.0f} MB; cache budget {args.cache_mb:.0f} MB; panel: {panel}")
    for video, errors in seen.items():
        print(f"  {video}: {'no error' if not errors else errors}")
    print("verdict:", "no session saw an error" if not any(seen.values()) else "ERRORS", "|",
          f"peak RSS {'under' if peak <= args.cache_mb else 'OVER'} the budget")


if __name__ == "__main__":
    main()
