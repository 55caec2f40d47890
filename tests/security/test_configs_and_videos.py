"""Crafted checkpoint configs (`info`, the app's sidebar) and crafted videos (`predict`, uploads):
each refused in one line, nothing written, under 1 GiB; the app keeps every good checkpoint."""
from __future__ import annotations

from pathlib import Path

import pytest

from gta_core.__main__ import main as cli_main
from tests.security import crafted
from tests.security.conftest import assert_refused, run_harness

CONFIG_WORDS = {   # a word of each refusal
    "deep_nesting": "nested 100001 levels deep",
    "dataset_is_a_string": "dataset: Input should be an object",
    "provenance_is_a_list": "provenance: Input should be an object",
    "model_name_is_a_dict": "model_name: Input should be a valid string",
    "gta_groups_zero": "gta_groups: Input should be greater than or equal to 1",
    "block_stage_res6": "block_stages.0: Input should be 'res2', 'res3', 'res4' or 'res5'",
    "width_multiplier_huge": "width_multiplier: Input should be less than or equal to 2",
    "num_frames_huge": "num_frames: Input should be less than or equal to 256",
    "num_classes_huge": "num_classes: Input should be less than or equal to 25000",
    "input_size_huge": "input_size: Input should be less than or equal to 2048",
    "frames_as_string": "num_frames: Input should be a valid integer",
    "not_utf8": "not valid JSON",
}


@pytest.fixture(scope="module")
def configs(good_checkpoint, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("configs")
    return {name: crafted.crafted_config(folder, name, good_checkpoint) for name in crafted.CONFIG_CHANGES}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {name: build(folder) for name, build in crafted.VIDEOS.items()}


def _listing(folder: Path) -> list:
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.parametrize("name", sorted(CONFIG_WORDS))
def test_info_refuses_a_crafted_config_in_one_line(configs, name, capsys):
    before = _listing(configs[name].parent)
    assert cli_main(["info", str(configs[name])]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and CONFIG_WORDS[name] in lines[0], lines
    assert _listing(configs[name].parent) == before


@pytest.mark.parametrize("name", sorted(crafted.VIDEOS))
def test_predict_refuses_a_crafted_video_in_one_line(good_checkpoint, videos, name, capsys):
    before = _listing(videos[name].parent)
    assert cli_main(["predict", str(good_checkpoint), str(videos[name]), "--device", "cpu"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(videos[name]) in lines[0], lines
    assert _listing(videos[name].parent) == before


def test_configs_and_videos_stay_under_1_gib(configs, videos, good_checkpoint, tmp_path):
    """The same commands in one harness subprocess, where the peaks are measured (they bound every case)."""
    cases = [{"name": f"config {n}", "argv": ["info", str(p)]} for n, p in configs.items()]
    cases += [{"name": f"video {n}", "argv": ["predict", str(good_checkpoint), str(p), "--device", "cpu"]}
              for n, p in videos.items()]
    rows = run_harness(cases, cwd=tmp_path)
    assert len(rows) == len(cases)
    for row in rows:
        assert_refused(row)


def test_the_app_lists_crafted_configs_as_unreadable_and_runs_the_good_one(
    configs, good_checkpoint, monkeypatch, tmp_path
):
    from tests.app.conftest import app_on, assert_clean
    from tests.app.fixtures import write_video

    root = tmp_path / "checkpoints"
    root.mkdir()
    for name, folder in configs.items():
        (root / name).symlink_to(folder)
    (root / "good").symlink_to(good_checkpoint)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "clip.mp4", frames=8, size=(64, 80))
    at = next(app_on(monkeypatch, [root], videos)).run()
    assert_clean(at)
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == len(configs) and all("unreadable: " in w for w in warnings), warnings
    for name, word in CONFIG_WORDS.items():
        assert any(w.startswith(f"{name} — unreadable: ") and word in w for w in warnings), (name, warnings)
    assert at.multiselect(key="checkpoints").options == ["good · good · fixture"]
    assert at.multiselect(key="checkpoints").value == ["good · good · fixture"]
    assert not at.error and at.session_state["gta_lens_context"].results[0].name == "good"


def test_each_session_uploads_into_its_own_capped_folder_removed_with_it():
    import gc
    import stat

    from app.engine import UploadFolder, video_from_upload

    first, second = UploadFolder(limit=3000), UploadFolder(limit=3000)
    assert first.path != second.path and stat.S_IMODE(first.path.stat().st_mode) == 0o700
    videos = [video_from_upload(f"v{i}.mp4", bytes([i]) * 1000, first) for i in range(4)]
    assert all(v.uploaded and not v.trusted and v.path.parent == first.path for v in videos)
    kept = sorted(p.name for p in first.path.iterdir())
    assert kept == sorted(v.path.name for v in videos[1:]), "the oldest upload made room for the newest"
    path = first.path
    del first, videos
    gc.collect()
    assert not path.exists() and second.path.exists()
    second.remove()
    assert not second.path.exists()
