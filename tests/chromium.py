"""The one Chromium the browser and PNG-export tests use, and the one line they fail with without it."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

MISSING = ("Chromium is missing: `make test` installs it as root (apt-get install chromium); "
           "otherwise run `sudo apt-get install chromium`")


def chromium_path() -> Path | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else None


def require_chromium() -> Path:
    """Chromium's path; without one the test fails with MISSING alone (no launch traceback)."""
    path = chromium_path()
    if path is None:
        pytest.fail(MISSING, pytrace=False)
    return path
