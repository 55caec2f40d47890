"""Where the bundled sample videos and checkpoints are, in a checkout and in an installed wheel.

In a source checkout (and an editable install) they are the top-level
`assets/` and `checkpoints/` folders. A wheel ships the same folders inside
this package as `gta_core/_bundle/{assets,checkpoints}` (pyproject.toml maps
them there), so `gta-lens app` finds them from any directory.
"""
from __future__ import annotations

from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]
_WHEEL = Path(__file__).resolve().parent / "_bundle"


def _bundled(name: str) -> Path:
    for root in (_CHECKOUT, _WHEEL):
        if (root / name / "README.md").is_file():   # both bundled folders carry a README
            return root / name
    raise FileNotFoundError(f"the bundled {name}/ folder is missing (looked in {_CHECKOUT} and {_WHEEL})")


def assets_dir() -> Path:
    """Sample videos (assets/synth, assets/real) and the sample dataset (assets/sample_dataset)."""
    return _bundled("assets")


def checkpoints_dir() -> Path:
    """The shipped checkpoints, one folder each."""
    return _bundled("checkpoints")


def sample_video(name: str = "temporal__moving_something_from_left_to_right.webm") -> Path:
    """A bundled video by file name (searched under assets/)."""
    found = sorted(assets_dir().rglob(name))
    if not found:
        raise FileNotFoundError(f"no bundled video named {name!r} under {assets_dir()}")
    return found[0]


def streamlit_config() -> Path:
    """The app's server settings (.streamlit/config.toml), passed as flags by `gta-lens app`."""
    for path in (_CHECKOUT / ".streamlit" / "config.toml", _WHEEL / "streamlit" / "config.toml"):
        if path.is_file():
            return path
    raise FileNotFoundError("the app's .streamlit/config.toml is missing")
