"""The synthetic generator: reversal pairs, determinism, the CLI, the layout."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from gta_core.data import synth
from gta_core.video import ClipSpec, read_clip

SMALL = dict(size="32x40", frames=8, fps=8)


def _plan(variant, c, seed_words):
    return synth.VideoPlan(variant, c, seed_words, 48, 64, 12)


def _class_index(template_name):
    return [synth.class_name(t) for t, *_ in synth.TEMPORAL_CLASSES].index(template_name)


def test_reverse_pairs_are_symmetric_and_cover_every_one_way_class():
    pairs = synth.reverse_pairs()
    names = [synth.class_name(t) for t, *_ in synth.TEMPORAL_CLASSES]
    assert set(pairs) == set(names)
    assert all(pairs[pairs[a]] == a for a in pairs)
    assert pairs["Moving something from left to right"] == "Moving something from right to left"
    assert pairs["Covering something with something"] == "Uncovering something"
    assert pairs["Pretending to move something sideways"] == "Pretending to move something sideways"


@pytest.mark.parametrize("name", [n for n, m in synth.reverse_pairs().items() if n != m])
def test_time_reversed_video_is_a_sample_of_its_pair_class(name):
    pair = synth.reverse_pairs()[name]
    for k in range(2):  # same seed words, the pair's class: exactly the reversed frames
        words = (5, 0, 99, k)
        a, _ = synth.render(_plan("temporal", _class_index(name), words))
        b, _ = synth.render(_plan("temporal", _class_index(pair), words))
        np.testing.assert_array_equal(a[::-1], b)
        assert not np.array_equal(a, a[::-1])  # not a palindrome: order matters


def test_generate_is_deterministic_and_independent_of_worker_count(tmp_path):
    a = synth.generate(tmp_path / "a", seed=3, variant="appearance", videos_per_class=1, workers=1, **SMALL)
    b = synth.generate(tmp_path / "b", seed=3, variant="appearance", videos_per_class=1, workers=2, **SMALL)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "dataset_info.json")
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name != "dataset_info.json")
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    c = synth.generate(tmp_path / "c", seed=4, variant="appearance", videos_per_class=1, workers=1, **SMALL)
    assert (a / "train.json").read_text() != (c / "train.json").read_text() or any(
        (a / f).read_bytes() != (c / f).read_bytes() for f in files if f.suffix == ".webm")


def test_cli_writes_the_ssv2_layout(tmp_path):
    parser = argparse.ArgumentParser()
    synth.register(parser.add_subparsers())
    args = parser.parse_args(["synth", str(tmp_path / "out"), "--seed", "1", "--videos-per-class", "2",
                              "--size", "32x40", "--frames", "8", "--workers", "1"])
    assert args.func(args) == 0
    out = tmp_path / "out"
    labels = json.loads((out / "labels.json").read_text())
    assert len(labels) == len(synth.TEMPORAL_CLASSES)
    assert sorted(int(v) for v in labels.values()) == list(range(len(labels)))
    rows = json.loads((out / "train.json").read_text()) + json.loads((out / "validation.json").read_text())
    assert len(rows) == 2 * len(labels)
    assert {synth.class_name(r["template"]) for r in rows} == set(labels)
    assert json.loads((out / "reverse_pairs.json").read_text()) == synth.reverse_pairs()
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["seed"] == 1 and info["variant"] == "temporal" and "synth" in info["command_line"]
    row = rows[0]
    assert "[" not in row["label"] and len(row["placeholders"]) >= 1
    clip = read_clip(out / "videos" / f"{row['id']}.webm", ClipSpec(8, 32, 32), decoder="decord")
    assert clip.num_decoded_frames == 8 and clip.info.codec == "vp9"


def test_low_clutter_keeps_the_motion_and_flattens_the_background():
    # The same video (same seed words) rendered at both clutter levels.
    high, _ = synth.render(synth.VideoPlan("temporal", 0, (7, 0, 0, 3), 64, 80, 8, "high"))
    low, _ = synth.render(synth.VideoPlan("temporal", 0, (7, 0, 0, 3), 64, 80, 8, "low"))
    # Background texture: the mean absolute difference between neighbouring pixels.
    roughness = lambda v: float(np.abs(np.diff(v.astype(np.float32), axis=2)).mean())
    assert roughness(low) < 0.5 * roughness(high)
    # Still "moving left to right": the frame-to-frame change is there in both.
    assert np.abs(np.diff(low.astype(np.float32), axis=0)).mean() > 0.5
    with pytest.raises(ValueError, match="clutter must be one of"):
        synth.generate("/nonexistent", seed=0, clutter="medium")


def test_validation_fraction_one_gives_a_validation_only_set(tmp_path):
    out = synth.generate(tmp_path / "val_only", seed=2, videos_per_class=2, size="32x40", frames=4, workers=1,
                         validation_fraction=1.0)
    assert json.loads((out / "train.json").read_text()) == []
    assert len(json.loads((out / "validation.json").read_text())) == 2 * len(synth.TEMPORAL_CLASSES)
    with pytest.raises(ValueError, match="validation_fraction"):
        synth.generate(tmp_path / "bad", seed=0, validation_fraction=0.0)
