"""A fixed-size resize (ClipSpec.resize_to: every frame to exactly H×W, the aspect not kept), as
torchvision's VideoClassification transform does, on real encoded 16:9 video.

The oracles: cv2 on the decoded frames by hand (to 0), and torchvision 0.28.0's
own VideoClassification (tests/peers/torchvision.py), which resizes a uint8
tensor bilinearly without antialiasing (float, then rounded): ours, cv2's
fixed-point INTER_LINEAR, is within one uint8 step of it (measured: one step,
1/255/0.216989 = 0.0181 normalised, in ~7-13% of the values; 0 elsewhere).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from gta_core import CheckpointConfig, CheckpointError, load_checkpoint
from gta_core.checkpoint import read_config
from gta_core.data.ssv2 import SSv2Dataset
from gta_core.train import CachedClips, build_frame_cache
from gta_core.video import ClipSpec, normalise, read_clip
from gta_core.video.decode import inspect_video, read_pyav
from gta_core.video.limits import VideoLimits
from gta_core.views import crop_point, scene_point
from tests.peers import torchvision as peer
from tests.test_pipelines import BUNNY, X264, textured
from tests.video_fixtures import encode

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)    # torchvision's video enums
ONE_STEP = 1 / 255 / min(STD)                                                # one uint8 level, normalised


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    """12 frames of 90×160 (16:9) with detail at every scale: a resize or crop off by one pixel shows."""
    return encode(tmp_path_factory.mktemp("wide") / "wide.mp4", textured(12, 90, 160, seed=4), "libx264", options=X264)


def decoded(path: Path, indices: list[int]) -> np.ndarray:
    """The frames read_clip's PyAV path decodes, (T, H, W, 3) RGB uint8, without its resize and crop."""
    return read_pyav(path, inspect_video(path, VideoLimits()), VideoLimits(), lambda count: indices)[1]


@pytest.mark.parametrize("size, crop, interpolation, flag", [
    ((128, 171), 112, "bilinear", cv2.INTER_LINEAR),     # torchvision's ResNets: both sides grow
    ((60, 72), 48, "area", cv2.INTER_AREA),             # both shrink: INTER_AREA
    ((120, 96), 80, "area", cv2.INTER_LINEAR),          # the height grows: INTER_LINEAR, as for the shorter side
])
def test_read_clip_resizes_to_exactly_h_by_w_before_the_crop(wide, size, crop, interpolation, flag):
    spec = ClipSpec(num_frames=4, input_size=crop, resize_to=size, interpolation=interpolation)
    clip = read_clip(wide, spec, decoder="pyav")
    by_hand = np.stack([cv2.resize(f, size[::-1], interpolation=flag) for f in decoded(wide, clip.frame_indices)])
    top, left = (size[0] - crop) // 2, (size[1] - crop) // 2
    assert np.array_equal(clip.frames_uint8, by_hand[:, top:top + crop, left:left + crop])
    assert clip.crop_box == pytest.approx((top / size[0], left / size[1], (top + crop) / size[0], (left + crop) / size[1]))
    assert clip.frame_size == (90, 160)


def test_three_crops_and_rounding_follow_the_fixed_size(wide):
    spec = ClipSpec(num_frames=2, input_size=64, resize_to=(64, 121), crop="three", interpolation="bilinear")
    clip = read_clip(wide, spec, decoder="pyav", all_views=True)
    resized = np.stack([cv2.resize(f, (121, 64), interpolation=cv2.INTER_LINEAR) for f in decoded(wide, clip.frame_indices)])
    assert clip.view_names == ["left crop", "right crop", "centre crop"]
    for view, left in zip(clip.views, (0, 56, 28)):     # MMAction2's ThreeCrop: w_step = (121 - 64) // 2, 2 · w_step, w_step
        assert torch.equal(view, normalise(resized[:, :, left:left + 64], spec.mean, spec.std))
    rounded = read_clip(wide, ClipSpec(num_frames=2, input_size=64, resize_to=(64, 121), crop_rounding="round",
                                       interpolation="bilinear"), decoder="pyav")
    assert np.array_equal(rounded.frames_uint8, resized[:, :, 28:92])       # round(28.5) = 28, half to even
    rounded = read_clip(wide, ClipSpec(num_frames=2, input_size=64, resize_to=(64, 123), crop_rounding="round",
                                       interpolation="bilinear"), decoder="pyav")
    assert rounded.crop_box[1] == pytest.approx(30 / 123)                   # round(29.5) = 30; floor: 29


@pytest.mark.parametrize("video, size, crop", [("wide", (128, 171), 112), ("wide", (256, 256), 224),
                                               ("bunny", (128, 171), 112), ("bunny", (256, 256), 224)])
def test_clip_equals_torchvision_video_classification(wide, video, size, crop):
    """The imported models' transform, torchvision's own, on the same decoded frames (720p Big Buck Bunny:
    a 7.5× shrink, where an antialiased or area resize would differ by tens of steps)."""
    path = wide if video == "wide" else BUNNY
    presets = peer.transform_presets()
    spec = ClipSpec(num_frames=4, input_size=crop, resize_to=size, mean=MEAN, std=STD, interpolation="bilinear",
                    crop_rounding="round")
    ours = read_clip(path, spec, decoder="pyav")
    frames = torch.from_numpy(decoded(path, ours.frame_indices)).permute(0, 3, 1, 2)     # (T, C, H, W) uint8
    theirs = presets.VideoClassification(crop_size=(crop, crop), resize_size=size)(frames)
    assert theirs.shape == ours.tensor.shape == (3, 4, crop, crop)
    gap = (ours.tensor - theirs).abs()
    assert gap.max().item() <= ONE_STEP + 1e-5
    assert (gap > 1e-4).float().mean().item() < 0.2
    floor = read_clip(path, ClipSpec(num_frames=4, input_size=crop, resize_to=size, mean=MEAN, std=STD,
                                     interpolation="bilinear"), decoder="pyav")
    shifted = (floor.tensor - theirs).abs().max().item()    # 171 - 112 is odd: floor's crop is a column left
    assert shifted > 10 * ONE_STEP if size[1] % 2 else shifted <= ONE_STEP + 1e-5


def test_a_scene_point_is_the_same_place_through_any_resize(tmp_path):
    """A white square at a known place of a 16:9 frame: found in the crops of a shorter-side spec and of a
    fixed-size one, and mapped to the scene through each crop_box, it is the same place of the frame."""
    frame = np.full((90, 160, 3), 40, np.uint8)
    frame[30:40, 100:110] = 255                                    # centre (35, 105): fractions (0.389, 0.656)
    path = encode(tmp_path / "square.mp4", [frame] * 4, "libx264", options={"preset": "ultrafast", "crf": "0"})
    specs = [ClipSpec(num_frames=1, input_size=84, resize_shorter=90), ClipSpec(num_frames=1, input_size=112,
             resize_to=(128, 171), interpolation="bilinear", crop_rounding="round")]
    places = []
    for spec in specs:
        clip = read_clip(path, spec, decoder="pyav")
        ys, xs = np.nonzero(clip.frames_uint8[0, :, :, 0] > 150)
        fy, fx = (ys.mean() + 0.5) / spec.input_size, (xs.mean() + 0.5) / spec.input_size
        places.append(scene_point(fy, fx, clip.crop_box))
        assert crop_point(*places[-1], clip.crop_box)[:2] == pytest.approx((fy, fx))
    for sy, sx in places:
        assert (sy, sx) == pytest.approx((35 / 90, 105 / 160), abs=0.01)


# --------------------------------------------------------------------------- the config


def test_old_configs_load_unchanged_and_new_fields_are_written_only_when_set(tmp_path):
    shipped = sorted((REPO / "checkpoints").glob("*/config.json"))
    assert shipped
    for path in shipped:
        values = json.loads(path.read_text())
        assert "resize_to" not in values and "crop_rounding" not in values
        config = read_config(path.parent)
        assert config.resize_to is None and config.clip_spec().resize_to is None
        written = config.to_dict()                            # (with the view fields added since, at their defaults)
        assert {k: written[k] for k in values} == values and "resize_to" not in written and "crop_rounding" not in written
    load_checkpoint(shipped[0].parent)                        # weights still load strictly
    config = read_config(shipped[0].parent)
    config.resize_to, config.crop_rounding, config.input_size = [128, 171], "round", 112
    config.validate()
    again = CheckpointConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.clip_spec().resize_to == (128, 171) and again.clip_spec().crop_rounding == "round"


@pytest.mark.parametrize("value, message", [
    (0, "resize_to"), ([0, 171], "resize_to.0"), ([-128, 171], "resize_to.0"), ([128, 100_000], "resize_to.1"),
    ([128], "resize_to"), ([128, 171, 3], "resize_to"), ("128x171", "resize_to"), ([128.0, 171], "resize_to.0"),
    ([True, 171], "resize_to.0"), ([96, 171], "does not fit in resize_to 96×171"),
])
def test_bad_resize_to_is_refused(tmp_path, value, message):
    path = sorted((REPO / "checkpoints").glob("*/config.json"))[0]
    values = {**json.loads(path.read_text()), "resize_to": value, "input_size": 112}
    with pytest.raises(CheckpointError, match=message):
        CheckpointConfig.from_dict(values)
    with pytest.raises(CheckpointError, match="crop_rounding"):
        CheckpointConfig.from_dict({**values, "resize_to": None, "crop_rounding": "ceil"})
    with pytest.raises(ValueError, match="does not fit" if "fit" in message else "resize_to must be None or two"):
        ClipSpec(resize_to=value, input_size=112)


# --------------------------------------------------------------------------- the frame cache


def test_frame_cache_keys_on_resize_to_and_equals_the_reader(tmp_path):
    from gta_core.data import synth

    root = synth.generate(tmp_path / "synth", seed=3, videos_per_class=2, size="32x56", frames=6, workers=1)
    plain = SSv2Dataset(root, "validation", ClipSpec(4, 28, 32), train=False)
    fixed_spec = ClipSpec(4, 28, 32, resize_to=(36, 48), interpolation="bilinear")
    fixed = SSv2Dataset(root, "validation", fixed_spec, train=False)
    paths = [build_frame_cache(source, side, 64, tmp_path / "cache", progress=False)
             for source, side in ((plain, 32), (fixed, 36))]
    assert paths[0] != paths[1] and paths[0].name == "validation_32px_max64f_4t.u8"    # the default's name kept
    assert json.loads(paths[1].with_suffix(".json").read_text())["resize_to"] == [36, 48]
    cached = CachedClips(fixed, paths[1], num_frames=4, input_size=28, train=False)
    for i in (0, len(fixed) - 1):          # 36×48 -> centre square 36 -> 28 equals 36×48 -> 28: even margins
        assert torch.equal(cached[i][0], fixed[i][0])
    with pytest.raises(ValueError, match="crop_rounding"):
        build_frame_cache(SSv2Dataset(root, "validation", ClipSpec(4, 28, 32, crop_rounding="round"), train=False),
                          32, 64, tmp_path / "cache", progress=False)
