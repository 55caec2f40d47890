"""Our clip reader against MMAction2's own test pipeline (mmaction2 1.2.0, run here).

DecordInit / SampleFrames / DecordDecode / Resize / CenterCrop or ThreeCrop /
FormatShape, then ActionDataPreprocessor's normalisation, on real files: Big
Buck Bunny (132 frames, 1280×720) and two made videos of 30 and 400 frames.
Frame indices must be equal; the normalised tensors equal to float rounding
(both read the same decord frames, so the pixels are the same integers).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from gta_core.video import ClipSpec, dense_views, read_clip, tsn_views
from gta_core.video.clip import NUM_CROPS
from tests.peers import mmaction as peer
from tests.video_fixtures import encode

BUNNY = Path(__file__).resolve().parents[1] / "assets" / "real" / "big_buck_bunny_720p.mp4"
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
X264 = {"preset": "ultrafast"}


def textured(count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Frames with detail at every scale (a moving gradient plus noise), so a resize or crop off by one shows."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(count):
        base = np.stack([(xs * 3 + i * 5) % 256, (ys * 2 + i * 3) % 256, (xs + ys + i) % 256], axis=-1)
        frames.append(np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pipelines")
    return {
        "bunny": BUNNY,
        "made_30": encode(folder / "made_30.mp4", textured(30, 90, 160, seed=1), "libx264", options=X264),
        "made_400": encode(folder / "made_400.mp4", textured(400, 72, 54, seed=2), "libx264", options=X264),
    }


# The test pipelines of MMAction2's configs: I3D 32x2x1 (recognition/i3d/*32x2x1*: val CenterCrop 224,
# test 10 clips × ThreeCrop 256, here 2 clips to keep the test short) and TSM 1x1x8
# (recognition/tsm/*1x1x8*: test twice_sample).
CONFIGS = {
    "i3d_32x2x1_val": (dict(clip_len=32, frame_interval=2, num_clips=1), dict(type="CenterCrop", crop_size=224),
                       dict(num_frames=32, sampling="dense", frame_interval=2, num_clips=1, input_size=224)),
    "i3d_32x2x1_test": (dict(clip_len=32, frame_interval=2, num_clips=2), dict(type="ThreeCrop", crop_size=256),
                        dict(num_frames=32, sampling="dense", frame_interval=2, num_clips=2, input_size=256,
                             crop="three")),
    "tsm_1x1x8_val": (dict(clip_len=1, frame_interval=1, num_clips=8), dict(type="CenterCrop", crop_size=224),
                      dict(num_frames=8, sampling="tsn", input_size=224)),
    "tsm_1x1x8_test": (dict(clip_len=1, frame_interval=1, num_clips=8, twice_sample=True),
                       dict(type="CenterCrop", crop_size=224),
                       dict(num_frames=8, sampling="tsn", twice_sample=True, input_size=224)),
    # The TSM configs' own test crop: TenCrop 224 (corners and centre at quarter steps of the margin, mirrored).
    "tsm_1x1x8_tencrop": (dict(clip_len=1, frame_interval=1, num_clips=8), dict(type="TenCrop", crop_size=224),
                          dict(num_frames=8, sampling="tsn", input_size=224, crop="ten")),
}


def mmaction_clip(video: Path, sample: dict, crop: dict, input_format: str):
    """(frame indices, normalised views (V, 3, T, H, W)) from MMAction2's pipeline and data preprocessor."""
    pipeline = peer.pipeline([
        dict(type="DecordInit"),
        dict(type="SampleFrames", test_mode=True, **sample),
        dict(type="DecordDecode"),
        dict(type="Resize", scale=(-1, 256)),
        crop,
        dict(type="FormatShape", input_format=input_format),
    ])
    result = pipeline(dict(filename=str(video), start_index=0, modality="RGB"))
    preprocessor = peer.registry().build(dict(type="ActionDataPreprocessor", mean=MEAN, std=STD,
                                              format_shape=input_format))
    imgs = torch.from_numpy(result["imgs"]).float()
    views = preprocessor.forward(dict(inputs=[imgs], data_samples=None))["inputs"][0]
    return result["frame_inds"], views


CASES = [(config, video) for config in CONFIGS for video in ("bunny", "made_30", "made_400")
         if (config, video) != ("i3d_32x2x1_test", "bunny")]   # 9 views of 720p: the made videos cover it


@pytest.mark.parametrize("config, video", CASES)
def test_clip_equals_mmaction2_pipeline(videos, video, config):
    sample, crop, fields = CONFIGS[config]
    spec = ClipSpec(resize_shorter=256, mean=tuple(m / 255 for m in MEAN), std=tuple(s / 255 for s in STD),
                    interpolation="bilinear", **fields)
    ours = read_clip(videos[video], spec, decoder="decord", all_views=True)
    indices, views = mmaction_clip(videos[video], sample, crop, "NCTHW" if fields["sampling"] == "dense" else "NCHW")
    if fields["sampling"] == "tsn":          # NCHW: (crops · clips · T, C, H, W) -> (views, C, T, H, W)
        views = views.reshape(-1, spec.num_frames, *views.shape[1:]).transpose(1, 2)
    temporal = ours.view_frame_indices[: len(ours.view_frame_indices) // NUM_CROPS[spec.crop]]
    assert [int(i) for i in indices] == [i for view in temporal for i in view]
    assert ours.views.shape == views.shape == (spec.num_views, 3, spec.num_frames, spec.input_size, spec.input_size)
    # One uint8 step is 1/57 in normalised units; float rounding is 1e-5.
    assert (ours.views - views).abs().max().item() < 1e-4


def test_primary_view_is_the_middle_clip_centre_crop(videos):
    spec = ClipSpec(num_frames=32, sampling="dense", frame_interval=2, num_clips=5, crop="three",
                    input_size=128, resize_shorter=128, interpolation="bilinear")
    ours = read_clip(videos["made_400"], spec, decoder="decord", all_views=True)
    primary = ours.view_names.index("clip 2, centre crop")
    assert torch.equal(ours.tensor, ours.views[primary])
    assert ours.frame_indices == ours.view_frame_indices[primary]
    alone = read_clip(videos["made_400"], spec, decoder="decord")
    assert alone.views is None and torch.equal(alone.tensor, ours.tensor)
    # made_400 is 54 wide, 72 high: resized to 128×171 (⌊170.67 + ½⌋), the three crops go down the height.
    assert ours.view_names[:3] == ["clip 0, top crop", "clip 1, top crop", "clip 2, top crop"]
    assert ours.crop_box == pytest.approx((21 / 171, 0.0, 149 / 171, 1.0))


def test_ten_crop_views_names_and_primary_view(videos):
    spec = ClipSpec(num_frames=4, input_size=224, resize_shorter=256, crop="ten", interpolation="bilinear")
    ours = read_clip(videos["made_30"], spec, decoder="decord", all_views=True)
    assert spec.num_views == 10 and ours.view_names[:3] == ["upper left crop", "upper left crop, flipped",
                                                               "upper right crop"]
    primary = ours.view_names.index("centre crop")
    assert torch.equal(ours.tensor, ours.views[primary])
    assert torch.equal(ours.views[primary + 1], ours.views[primary].flip(-1))     # its mirror follows it
    # made_30 is 160×90: resized to 455×256, margins 231 and 32. TenCrop's centre sits at 2·⌊231/4⌋ = 114, one
    # column left of CenterCrop's ⌊231/2⌋ = 115, and 2·⌊32/4⌋ = 16 down.
    assert ours.crop_box == pytest.approx((16 / 256, 114 / 455, 240 / 256, 338 / 455))


def test_fixed_size_resize_read_from_a_config_equals_mmaction2(videos):
    """Resize(scale=(171, 128), keep_ratio=False): MMAction2's (w, h) of the output, the aspect not kept. Read from
    a config text into resize_to (H, W) = (128, 171), our clip equals its pipeline's on 1280×720 Big Buck Bunny."""
    from gta_core.importers.pipeline import read_pipeline

    text = ("test_pipeline = [dict(type='DecordInit'), dict(type='SampleFrames', clip_len=8, frame_interval=4, "
            "num_clips=1, test_mode=True), dict(type='DecordDecode'), "
            "dict(type='Resize', scale=(171, 128), keep_ratio=False), dict(type='CenterCrop', crop_size=112), "
            "dict(type='FormatShape', input_format='NCTHW')]\n")
    fields, notes = read_pipeline(text, "x.pth", "i3d", {})
    assert (fields["resize_to"], fields["input_size"], fields["interpolation"]) == ([128, 171], 112, "bilinear")
    assert "keep_ratio=False" in notes["resize"]
    spec = ClipSpec(mean=tuple(m / 255 for m in MEAN), std=tuple(s / 255 for s in STD),
                    **{k: v for k, v in fields.items() if k in ClipSpec.__dataclass_fields__})
    ours = read_clip(videos["bunny"], spec, decoder="decord")
    pipeline = peer.pipeline([dict(type="DecordInit"), dict(type="SampleFrames", clip_len=8, frame_interval=4,
                                                            num_clips=1, test_mode=True), dict(type="DecordDecode"),
                              dict(type="Resize", scale=(171, 128), keep_ratio=False),
                              dict(type="CenterCrop", crop_size=112), dict(type="FormatShape", input_format="NCTHW")])
    result = pipeline(dict(filename=str(videos["bunny"]), start_index=0, modality="RGB"))
    preprocessor = peer.registry().build(dict(type="ActionDataPreprocessor", mean=MEAN, std=STD, format_shape="NCTHW"))
    theirs = preprocessor.forward(dict(inputs=[torch.from_numpy(result["imgs"]).float()], data_samples=None))["inputs"][0]
    assert [int(i) for i in result["frame_inds"]] == ours.frame_indices
    assert (ours.tensor - theirs[0]).abs().max().item() < 1e-4


def test_dense_indices_at_the_edges():
    # 400 frames, 32×2: the one test clip spans 63 frames and sits in the middle: starts at (400-63)//2 = 168.
    assert dense_views(400, 32, 2, 1, train=False) == [list(range(168, 232, 2))]
    # 30 frames: too short; the start is 0 and the indices wrap round (MMAction2's 'loop').
    assert dense_views(30, 32, 2, 1, train=False)[0][:17] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                                               28, 0, 2]
    # Three clips over 100 frames of span 63: starts 0, 18.5 -> 18 (numpy rounds halves to even), 37.
    assert [view[0] for view in dense_views(100, 32, 2, 3, train=False)] == [0, 18, 37]
    # Training: every clip fits inside the video.
    for seed in range(20):
        view = dense_views(100, 32, 2, 1, train=True, rng=seed)[0]
        assert 0 <= view[0] <= 100 - 64 and view == list(range(view[0], view[0] + 64, 2))


def test_tsn_indices_at_the_edges():
    assert tsn_views(30, 8, train=False) == [[1, 5, 9, 13, 16, 20, 24, 28]]
    assert tsn_views(30, 8, train=False, twice_sample=True)[1] == [0, 3, 7, 11, 15, 18, 22, 26]
    assert tsn_views(3, 8, train=False) == [[0, 0, 0, 1, 1, 2, 2, 2]]
    last = max(tsn_views(400, 8, train=True, rng=seed)[0][-1] for seed in range(50))
    assert 350 <= last <= 399


@pytest.mark.parametrize("fields, message", [
    (dict(sampling="strided"), "unknown sampling 'strided'"),
    (dict(sampling="tsn", frame_interval=2), "tsn sampling takes one frame per segment"),
    (dict(sampling="dense", twice_sample=True), "dense twice_sample needs num_clips >= 2"),
    (dict(crop="three", input_size=224), "crop 'three' (MMAction2's ThreeCrop) needs the crop side"),
    (dict(channel_order="gbr"), "unknown channel_order 'gbr'"),
    (dict(sampling="dense", num_clips=0), "num_clips must be an integer in [1, 32]"),
])
def test_bad_sampling_fields_are_refused(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ClipSpec(**fields)


def test_checkpoint_config_refuses_a_bad_sampling(tmp_path):
    from gta_core.checkpoint import CheckpointConfig, CheckpointError
    from gta_core.models import model_config

    arch = model_config("demo_r2d18", num_classes=2).to_dict()
    base = CheckpointConfig(architecture=arch, class_names=["a", "b"]).to_dict()
    assert CheckpointConfig.from_dict(base).sampling == "tsn"
    old = {k: v for k, v in base.items() if k not in ("frame_interval", "num_clips", "crop")}   # written before them
    assert ClipSpec.from_config(CheckpointConfig.from_dict(old).to_dict()).num_views == 1
    for change, message in ((dict(sampling="dense", frame_interval=0), "frame_interval must be an integer in [1, 64]"),
                            (dict(crop="three"), "crop 'three' (MMAction2's ThreeCrop) needs the crop side equal")):
        with pytest.raises(CheckpointError, match=r"^cfg\.json: " + re.escape(message)):
            CheckpointConfig.from_dict({**base, **change}, "cfg.json")
