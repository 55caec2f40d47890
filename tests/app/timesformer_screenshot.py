"""The Temporal attention view with an imported TimeSformer beside the shipped GTA, on the same clip: a PNG.

    .venv/bin/python -m tests.app.timesformer_screenshot OUT.png

An HF TimeSformer (8 frames of 112², 16² patches, 2 layers, random weights: a
picture of the view, not of a trained model) is saved with save_pretrained,
imported with `python -m gta_core import hf-timesformer`, and opened with
checkpoints/temporal_r2d18_gta in `streamlit run` + Debian's chromium.
"""
from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, TIMEOUT_MS, _serve, _wait_for_figures
from tests.helpers import run_cli
from tests.test_importers_timesformer import hf_timesformer

GTA = "temporal_r2d18_gta"


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        hf_timesformer(frames=8, size=112).save_pretrained(scratch / "hf")
        done = run_cli("import", "hf-timesformer", str(scratch / "hf"), "--out", str(scratch / "timesformer"))
        assert done.returncode == 0, done.stderr
        with _serve([scratch / "timesformer", ROOT / "checkpoints" / GTA], scratch / "cache") as url, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1500})
                page.goto(f"{url}/?models=timesformer&models={GTA}&block=res3.1", wait_until="domcontentloaded")
                _wait_for_figures(page, 4)                       # Predictions: a strip and a top-k per model
                page.get_by_role("link", name="Temporal attention", exact=True).click()
                main_area = page.get_by_test_id("stMain")
                expect(main_area.get_by_text(re.compile(r"its last layer layer\.1 is shown beside res3\.1"))).to_have_count(
                    1, timeout=TIMEOUT_MS)
                expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=TIMEOUT_MS)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out), full_page=True)
            finally:
                browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
