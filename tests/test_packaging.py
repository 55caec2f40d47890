"""The project as a newcomer meets it: the README's example, the package, the console script, the docs."""
from __future__ import annotations

import contextlib
import io
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest

import gta_core
import gta_core.comparison as comparison_module
import gta_core.records as records_module
from tests.chromium import MISSING, require_chromium

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "gta-lens"     # what `pip install -e .` (make test) put beside python


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Ten lines", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_and_prints_what_it_says():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_example(), "README.md", "exec"), {})
    printed = out.getvalue().splitlines()
    assert printed[0].startswith("temporal__moving_something_from_left_to_right.webm under temporal_r2d18_gta")
    assert printed[1].endswith("Moving something from left to right")       # the shipped GTA gets it right
    assert printed[1].split()[0] == "1." and float(printed[1].split()[1].rstrip("%")) > 50
    assert printed[6:8] == ["res3.1 gta", "res4.1 gta"]
    assert printed[8].startswith("tensor([[") and len(printed) == 8 + 8     # the (T, T) = (8, 8) mean |M̂|


def test_public_api_names_resolve_and_say_what_they_do():
    assert len(set(gta_core.__all__)) == len(gta_core.__all__)
    for name in gta_core.__all__:
        assert getattr(gta_core, name).__doc__, f"gta_core.{name} has no docstring"
    # Importing the modules that define them does not rebind the names (they are not called capture/compare).
    assert callable(gta_core.capture) and gta_core.capture is records_module.capture
    assert callable(gta_core.compare) and gta_core.compare is not comparison_module


def test_predict_takes_a_bare_model_and_names_classes_by_index():
    model = gta_core.create_model("demo_r2d18_gta", num_classes=3, input_size=64)
    prediction = gta_core.predict(model, gta_core.sample_video(), topk=2)
    assert [s.rank for s in prediction.top] == [1, 2]
    assert {s.name for s in prediction.top} <= {"class 0", "class 1", "class 2"}
    assert prediction.logits.shape == (3,) and len(prediction.frame_indices) == 8


def test_pyproject_lists_every_package_folder():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("gta_core", "app") for p in (ROOT / top).rglob("__init__.py")
    }
    bundled = set(config["package-dir"])
    assert set(config["packages"]) == on_disk | bundled
    assert {config["package-dir"][name] for name in bundled} == {"assets", "checkpoints", ".streamlit"}


def test_wheel_carries_the_bundle_the_pages_and_the_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("gta_lens-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("gta_core/_bundle/checkpoints/temporal_r2d18_gta/model.safetensors",
                     "gta_core/_bundle/assets/synth/temporal__covering_something_with_something.webm",
                     "gta_core/_bundle/assets/sample_dataset/labels.json",
                     "gta_core/_bundle/streamlit/config.toml", "app/views/query.py", "app/main.py"):
        assert expected in names, expected
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gta-lens = app.cli:entry_point" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert not any(n.startswith(("tests/", "bench/")) for n in names)


def _gta_lens(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert SCRIPT.exists(), f"{SCRIPT} is missing: install the project (make test does `pip install -e .`)"
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_console_script_works_from_any_directory(tmp_path):
    help_text = _gta_lens("--help", cwd=tmp_path)
    assert help_text.returncode == 0 and "app" in help_text.stdout and "predict" in help_text.stdout
    flops = _gta_lens("flops", "r2d50_gta", cwd=tmp_path)
    assert flops.returncode == 0 and "50.50" in flops.stdout, flops.stdout + flops.stderr   # Table 1's + GTA row


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gta_lens_app_answers_its_health_check_from_another_directory(tmp_path):
    port = _free_port()
    server = subprocess.Popen([str(SCRIPT), "app", "--port", str(port)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and answer is None:
            with contextlib.suppress(OSError):
                answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
            time.sleep(0.5)
        assert answer == b"ok"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_without_chromium_the_browser_tests_fail_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception) as failure:
        require_chromium()
    assert str(failure.value) == MISSING and "\n" not in MISSING


def test_docs_build_strictly_with_every_command_and_the_api(tmp_path):
    site = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    cli = (site / "reference/cli/index.html").read_text()
    for command in ("models", "flops", "predict", "compare", "import", "export", "app"):
        assert f"<code>{command}</code>" in cli, command
    api = (site / "reference/api/index.html").read_text()
    assert all(name in api for name in ("gta_core.api.predict", "gta_core.api.lens", "gta_core.video.clip.read_clip"))
