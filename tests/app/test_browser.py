"""The real app in a real browser: `streamlit run` on a free localhost port, Debian's chromium, headless.

It opens the app as `make run` does (bundled videos, the demo checkpoints in CHECKPOINTS),
waits for every view's figures, clicks a query point on the frame, and saves
one screenshot per view. Screenshots go to tests/app/screenshots/ (ignored by
git); to refresh the docs' images:

    GTA_LENS_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest tests/app/test_browser.py

The browser is never downloaded: without Debian's chromium the tests fail with the
one line of tests/chromium.py (`make test` installs it when run as root).
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.chromium import require_chromium

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# The checkpoints the screenshots show: the shipped NL, DNL and GTA of the temporal set, and the GTA
# of the appearance set (so the temporal view compares two datasets' M̂). The figure counts below
# are for these four.
CHECKPOINTS = [
    "checkpoints/temporal_r2d18_nl",
    "checkpoints/temporal_r2d18_dnl",
    "checkpoints/temporal_r2d18_gta",
    "checkpoints/appearance_r2d18_gta",
]
VIEWS = [  # (navigation label, screenshot name, figures expected with CHECKPOINTS)
    ("Predictions", "predictions", 8),        # frame strip + top-k per model
    ("Query point", "query", 8),              # picker + NL 1 + DNL 2 + GTA 2 + GTA 2
    ("Temporal attention", "temporal", 16),   # DNL 1 + GTA 6 + GTA 6 (M̂ and M̂ − M̂₀) + A / B / A − B
    ("Regions", "regions", 1),                # one model at a time (a selector), full width
    ("Swapped attention", "swapped", 2),      # DNL only
]
TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with {server.returncode}: {server.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer on {url} within {deadline_s:.0f} s")


@contextlib.contextmanager
def _serve(checkpoints: list[Path], cache: Path):
    """`streamlit run app/main.py` on a free localhost port with these checkpoint folders; yields its URL."""
    with serve_app({"GTA_LENS_CHECKPOINTS": os.pathsep.join(str(c) for c in checkpoints),
                    "GTA_LENS_CACHE": str(cache)}) as (url, _):   # GTA_LENS_CACHE: the Dataset view computes afresh
        yield url


@contextlib.contextmanager
def serve_app(settings: dict[str, str], app_args: tuple[str, ...] = (), deadline_s: float = 60.0):
    """The app with these GTA_LENS_* settings (and `-- app_args`) on a free localhost port; yields (URL, process)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GTA_LENS_")} | settings
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         *(("--", *app_args) if app_args else ())],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, deadline_s)
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


# Issue 20: a checkpoint folder whose config.json nests 100 000 levels deep sits beside the good ones;
# it is listed as unreadable and every view still works. Left out when refreshing the README's images.
CRAFTED = "crafted_config"
WITH_CRAFTED = "GTA_LENS_SCREENSHOTS" not in os.environ


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    crafted = tmp_path_factory.mktemp("crafted") / CRAFTED
    crafted.mkdir()
    (crafted / "config.json").write_text('{"format": "gta-lens-checkpoint", "architecture": ' + "[" * 100_000 + "]" * 100_000 + "}")
    folders = [ROOT / c for c in CHECKPOINTS] + ([crafted] if WITH_CRAFTED else [])
    with _serve(folders, tmp_path_factory.mktemp("gta_lens_cache")) as url:
        yield url


def _wait_for_figures(page, count: int, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until the script run is over (no running indicator) and `count` figures have drawn."""
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=timeout_ms)
    plots = page.locator("[data-testid='stMain'] .js-plotly-plot")
    expect(plots).to_have_count(count, timeout=timeout_ms)
    # Every figure has drawn its plot area; no error box and no exception on the page.
    for index in range(count):
        expect(plots.nth(index).locator(".main-svg").first).to_be_visible(timeout=timeout_ms)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stAlertContentError']").count() == 0


def test_every_view_in_a_real_browser(app_url):
    chromium = require_chromium()
    shots = Path(os.environ.get("GTA_LENS_SCREENSHOTS", ROOT / "tests/app/screenshots"))
    if not shots.is_absolute():
        shots = ROOT / shots
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1800})
            page.goto(app_url, wait_until="domcontentloaded")
            if WITH_CRAFTED:
                listed = page.get_by_test_id("stSidebar").get_by_text(f"{CRAFTED} — unreadable: ", exact=False)
                expect(listed).to_contain_text("nested 100001 levels deep", timeout=TIMEOUT_MS)
            for label, name, count in VIEWS:
                page.get_by_role("link", name=label, exact=True).click()
                expect(page.get_by_test_id("stMain").get_by_role("heading", name=label)).to_be_visible(timeout=TIMEOUT_MS)
                _wait_for_figures(page, count)
                if name == "query":
                    _pick_query_point(page)
                    _wait_for_figures(page, count)
                page.wait_for_timeout(500)  # let plotly finish its transitions before the picture
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            _upload_keeps_the_query(page, (25, 75))
            _dataset_view_opens_a_clip_in_query_point(page, shots)
        finally:
            browser.close()
    for name in [name for _, name, _ in VIEWS] + ["dataset"]:
        assert (shots / f"{name}.png").stat().st_size > 10_000


def _pick_query_point(page) -> None:
    """Click the frame at 25% height, 75% width; the query caption follows."""
    caption = page.get_by_text(re.compile(r"^Query: block"))
    before = caption.inner_text()
    frame = page.locator(".st-key-picker .js-plotly-plot .imagelayer image").first
    box = frame.bounding_box()
    assert box is not None, "the picker figure shows no frame"
    page.mouse.move(box["x"] + 0.75 * box["width"], box["y"] + 0.25 * box["height"])
    page.wait_for_timeout(200)
    page.mouse.click(box["x"] + 0.75 * box["width"], box["y"] + 0.25 * box["height"])
    expect(caption).not_to_have_text(before, timeout=TIMEOUT_MS)
    text = caption.inner_text()
    y, x = (int(v) for v in re.search(r"y = (\d+)%, x = (\d+)%", text).groups())
    assert abs(y - 25) <= 4 and abs(x - 75) <= 4, text


UPLOAD = ROOT / "assets/real/big_buck_bunny_720p.mp4"
QUERY_FIGURES = 8   # the query view's figure count with CHECKPOINTS (see VIEWS)


def _shown_query(page) -> dict[str, tuple[int, int]]:
    """The query as the sidebar sliders, the caption and the picker's red cross show it: (y %, x %) each."""
    sliders = tuple(
        int(page.locator(f".st-key-{key} [data-testid='stSliderThumbValue']").inner_text()) for key in ("q_y", "q_x")
    )
    text = page.get_by_text(re.compile(r"^Query: block")).inner_text()
    caption = tuple(int(v) for v in re.search(r"y = (\d+)%, x = (\d+)%", text).groups())
    # The cross (last trace) in pixels of the shown crop; the crop's size from the picker's grid of
    # clickable points (trace 1): 28×28 cell centres, so max − min spans 27/28 of it.
    y_pixel, x_pixel, y_span, x_span = page.locator(".st-key-picker .js-plotly-plot").first.evaluate(
        "plot => { const full = plot._fullData, cross = full[full.length - 1], grid = full[1];"
        " const span = v => Math.max(...Array.from(v)) - Math.min(...Array.from(v));"
        " return [cross.y[0], cross.x[0], span(grid.y), span(grid.x)]; }"
    )
    height, width = y_span * 28 / 27, x_span * 28 / 27
    figure = (int((y_pixel + 0.5) / height * 100), int((x_pixel + 0.5) / width * 100))
    return {"sliders": sliders, "caption": caption, "figure": figure}


def _assert_query(page, expected: tuple[int, int], when: str) -> None:
    shown = _shown_query(page)
    assert shown["sliders"] == shown["caption"] == shown["figure"], (when, shown)   # sidebar and figures agree
    assert all(abs(a - b) <= 4 for a, b in zip(shown["sliders"], expected)), (when, shown, expected)


def _upload_keeps_the_query(page, expected: tuple[int, int]) -> None:
    """Issue 10.4: the picked query survives an upload and the switch back, as a relative position."""
    page.get_by_role("link", name="Query point", exact=True).click()
    _wait_for_figures(page, QUERY_FIGURES)
    _assert_query(page, expected, "before the upload")
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Upload", exact=True).click()
    expect(sidebar.locator("input[type='file']")).to_have_count(1, timeout=TIMEOUT_MS)
    sidebar.locator("input[type='file']").set_input_files(str(UPLOAD))
    page.wait_for_timeout(1500)     # the upload starts a run; wait for it to begin
    _wait_for_figures(page, QUERY_FIGURES)
    _assert_query(page, expected, "after the upload")
    for label, _, count in VIEWS:                      # every view on the uploaded real video
        page.get_by_role("link", name=label, exact=True).click()
        expect(page.get_by_test_id("stMain").get_by_role("heading", name=label)).to_be_visible(timeout=TIMEOUT_MS)
        _wait_for_figures(page, count)
        if label == "Predictions":                     # an upload is no model's training data
            # In the page, not the sidebar (where the crafted checkpoint's "unreadable" warning sits).
            warnings = page.get_by_test_id("stMain").get_by_test_id("stAlertContentWarning")
            expect(warnings).to_have_count(len(CHECKPOINTS), timeout=TIMEOUT_MS)
            expect(warnings.first).to_contain_text("Out of domain")
        if label == "Temporal attention":              # Fig. 5 matrices have their axes
            plots = page.locator("[data-testid='stMain'] .js-plotly-plot")
            assert plots.locator("text", has_text="query frame").count() > 0
            assert plots.locator("text", has_text="key frame").count() > 0
    page.get_by_role("link", name="Query point", exact=True).click()
    _wait_for_figures(page, QUERY_FIGURES)
    _assert_query(page, expected, "after every view on the upload")
    sidebar.get_by_text("Bundled", exact=True).click()
    page.wait_for_timeout(1500)
    _wait_for_figures(page, QUERY_FIGURES)
    _assert_query(page, expected, "back on a bundled video")


DATASET_FIGURES = 5   # per-class accuracy, 2 confusion matrices, per-class TA matrices, GTA's M̂


def _dataset_view_opens_a_clip_in_query_point(page, shots: Path) -> None:
    """Issue 13: the Dataset view on the bundled sample set, then a clip of "only B right" opened in Query point."""
    page.get_by_role("link", name="Dataset", exact=True).click()
    main = page.get_by_test_id("stMain")
    expect(main.get_by_role("heading", name="Dataset")).to_be_visible(timeout=TIMEOUT_MS)
    # 60 clips × 3 models, decoded once: ~6 s on an idle 2-core CPU, several times that beside other jobs.
    _wait_for_figures(page, DATASET_FIGURES, timeout_ms=4 * TIMEOUT_MS)
    expect(main.get_by_text("Not compared: appearance_r2d18_gta")).to_be_visible()
    # A = NL, B = GTA by default (the appearance GTA has other classes): GTA is right on many clips NL misses.
    only_b = int(main.locator("[data-testid='stMetric']", has_text="only B right")
                 .get_by_test_id("stMetricValue").inner_text())
    assert only_b >= 20, only_b
    page.set_viewport_size({"width": 1600, "height": 3600})     # the whole view: stMain scrolls inside the page
    page.wait_for_timeout(800)
    page.screenshot(path=str(shots / "dataset.png"), full_page=True)
    page.set_viewport_size({"width": 1600, "height": 1800})
    caption = main.get_by_text(re.compile(r"^\d+ clips? only B right"))
    assert int(caption.inner_text().split()[0]) == only_b
    table = page.locator(".st-key-dataset_clips [data-testid='stDataFrame']")
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    first_clip = _first_row_clip(page)
    page.mouse.click(box["x"] + 18, box["y"] + 35 + 17)      # the first row's selection box (35 px rows)
    expect(main.get_by_role("heading", name="Query point")).to_be_visible(timeout=TIMEOUT_MS)
    _wait_for_figures(page, 1 + 1 + 2 + 2)                   # picker, NL row, DNL and GTA map + weights
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("combobox", name="Clip")).to_have_value(re.compile(rf"^validation/{first_clip} · "))
    for name in ("temporal_r2d18_nl", "temporal_r2d18_dnl", "temporal_r2d18_gta"):   # one column header each
        expect(main.locator("strong", has_text=re.compile(rf"^{name}$"))).to_have_count(1)
    expect(main.get_by_text("appearance_r2d18_gta")).to_have_count(0)
    assert f"video=validation%2F{first_clip}" in page.url and "source=Dataset" in page.url


def _first_row_clip(page) -> str:
    """The clip id in the first row of the clip table, read from the grid's accessible table."""
    cell = page.locator(".st-key-dataset_clips [role='gridcell']").first
    return cell.inner_text().strip()


def test_3d_models_beside_a_2d_one_in_a_real_browser(tmp_path):
    """A SlowFast-GTA (32 frames, 8 Slow steps) and an imported MMAction2 I3D-NL (16 frames, 2 steps) beside the
    shipped 2D GTA: the query and temporal views draw every model, and captions name the time step and its frames."""
    from tests.app.fixtures import make_random_checkpoint
    from tests.helpers import run_cli
    from tests.peers import mmaction as peer

    chromium = require_chromium()
    make_random_checkpoint(tmp_path / "sf_gta", "demo_slowfast_r50_gta", seed=7)
    source = tmp_path / "i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.pth"
    peer.save_as_published(peer.i3d_r50(num_classes=400, non_local=True, base_channels=16), str(source), "")
    assert run_cli("import", "mmaction2", str(source), "--out", str(tmp_path / "i3d_nl"), "--frames", "16").returncode == 0
    folders = [tmp_path / "sf_gta", tmp_path / "i3d_nl", ROOT / "checkpoints/temporal_r2d18_gta"]
    with _serve(folders, tmp_path / "cache") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1800})
            page.goto(url + "/?models=sf_gta&models=i3d_nl&models=temporal_r2d18_gta", wait_until="domcontentloaded")
            _wait_for_figures(page, 6)                       # Predictions: strip + top-k per model
            page.get_by_role("link", name="Query point", exact=True).click()
            _wait_for_figures(page, 6)                       # picker + SlowFast GTA 2 + I3D NL 1 + R2D GTA 2
            main = page.get_by_test_id("stMain")
            expect(main.get_by_text(re.compile(r"slow\.res3\.1, slow pathway, step \d+ = frames \d+–\d+"))).to_have_count(1)
            expect(main.get_by_text(re.compile(r"NL · res3\.1, step \d = frames \d+–\d+"))).to_have_count(1)
            expect(main.get_by_text(re.compile(r"GTA · res3\.1, frame \d"))).to_have_count(1)
            page.get_by_role("link", name="Temporal attention", exact=True).click()
            expect(main.get_by_text(re.compile(r"slow\.res3\.1: 8 time steps"))).to_have_count(1, timeout=TIMEOUT_MS)
            expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT_MS)
            assert page.locator("[data-testid='stException']").count() == 0
            # 3D axes say "step" (waited for: the figures draw after the run ends)
            expect(main.locator(".js-plotly-plot text", has_text="query step").first).to_be_visible(timeout=TIMEOUT_MS)
        finally:
            browser.close()
