"""SSv2Dataset on a generated set and on the official SSv2 file names."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from gta_core.data import synth
from gta_core.data.ssv2 import SSv2Dataset
from gta_core.video import ClipSpec, VideoError

SPEC = ClipSpec(num_frames=4, input_size=32, resize_shorter=32, mean=(0.5,) * 3, std=(0.5,) * 3)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("synth"), seed=0, videos_per_class=2, size="32x40",
                          frames=8, workers=1)


def test_reads_a_generated_set_with_labels_matching_the_json(synth_root):
    labels = json.loads((synth_root / "labels.json").read_text())
    for split in ("train", "validation"):
        ds = SSv2Dataset(synth_root, split, SPEC)
        rows = {r["id"]: r for r in json.loads((synth_root / f"{split}.json").read_text())}
        assert len(ds) == len(rows) == (15 if split == "validation" else 15)
        assert ds.class_names == sorted(labels, key=lambda k: int(labels[k]))
        assert ds.train is (split == "train")
        for i, (path, label, vid) in enumerate(ds.samples):
            assert path.name == f"{vid}.webm"
            assert ds.class_names[label] == rows[vid]["template"].replace("[", "").replace("]", "")
        clip, label = ds[0]
        assert clip.shape == (3, 4, 32, 32) and clip.dtype == torch.float32
        assert label == ds.samples[0][1]


def test_training_items_are_reproducible_per_epoch(synth_root):
    ds = SSv2Dataset(synth_root, "train", SPEC, seed=1)
    a, _ = ds[3]
    b, _ = ds[3]
    torch.testing.assert_close(a, b)


def test_official_ssv2_names_and_template_rule(synth_root, tmp_path):
    root = tmp_path / "ssv2"
    videos = root / "20bn-something-something-v2"
    videos.mkdir(parents=True)
    src = json.loads((synth_root / "validation.json").read_text())[:3]
    labels = {"Approaching something with your camera": "0", "Moving something up": "1",
              "Holding something next to something": "2"}
    (root / "something-something-v2-labels.json").write_text(json.dumps(labels))
    rows = [
        {"id": src[0]["id"], "label": "Moving a pen up", "template": "Moving [something] up", "placeholders": ["a pen"]},
        {"id": src[1]["id"], "label": "Holding a cup next to a pen",
         "template": "Holding [something] next to [something]", "placeholders": ["a cup", "a pen"]},
    ]
    (root / "something-something-v2-validation.json").write_text(json.dumps(rows))
    for r in rows:
        shutil.copy(synth_root / "videos" / f"{r['id']}.webm", videos / f"{r['id']}.webm")
    ds = SSv2Dataset(root, "validation", SPEC)
    assert [s[1] for s in ds.samples] == [1, 2]
    assert ds.class_names[0] == "Approaching something with your camera"
    assert ds[1][1] == 2


def test_unreadable_video_raises_video_error_with_its_path(synth_root, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(synth_root, root)
    ds = SSv2Dataset(root, "validation", SPEC)
    path = ds.samples[0][0]
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(VideoError) as err:
        ds[0]
    assert str(path) in str(err.value) and err.value.reason == "truncated"
    path.unlink()
    with pytest.raises(VideoError) as err:
        ds[0]
    assert err.value.reason == "missing_file"
