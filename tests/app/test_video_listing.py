"""The app's video list: one lister (gta_core.video.find_videos), not walked again on every rerun."""
from __future__ import annotations

import hashlib
import os

from app import engine, settings
from gta_core.hashing import file_sha256


def test_listing_is_walked_once_per_folder_version(tmp_path, monkeypatch):
    (tmp_path / "b.mp4").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.WEBM").write_bytes(b"x")
    walks = []

    def counted(folder, skip_datasets=False):
        walks.append(folder)
        return settings.list_videos(folder, skip_datasets)

    monkeypatch.setattr(engine, "list_videos", counted)
    engine._listed_videos.clear()
    first = engine.listed_videos(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in first] == ["b.mp4", "sub/a.WEBM"]
    assert engine.listed_videos(tmp_path) == first and len(walks) == 1        # a rerun: no walk
    (tmp_path / "c.mkv").write_bytes(b"x")
    os.utime(tmp_path, ns=(0, tmp_path.stat().st_mtime_ns + 10**9))          # coarse-mtime filesystems
    assert [p.name for p in engine.listed_videos(tmp_path)] == ["b.mp4", "c.mkv", "a.WEBM"]
    assert len(walks) == 2
    assert engine.listed_videos(tmp_path / "missing") == []


def test_bundled_listing_leaves_out_dataset_clips(tmp_path):
    (tmp_path / "loose.mp4").write_bytes(b"x")
    dataset = tmp_path / "set"
    (dataset / "videos").mkdir(parents=True)
    (dataset / "labels.json").write_text("{}")
    (dataset / "videos" / "1.webm").write_bytes(b"x")
    assert [p.name for p in settings.list_videos(tmp_path)] == ["loose.mp4", "1.webm"]
    assert [p.name for p in settings.list_videos(tmp_path, skip_datasets=True)] == ["loose.mp4"]


def test_file_sha256_follows_the_file_version(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 3_000_000)                 # more than one 1 MiB read
    assert file_sha256(path) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    path.write_bytes(b"b")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    assert file_sha256(path) == hashlib.sha256(b"b").hexdigest()
