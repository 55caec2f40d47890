"""The importers read the source's test pipeline: MMAction2's own configs, file names, CLI overrides."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from gta_core.importers import torchvision_video, tsm
from gta_core.importers.pipeline import config_values, read_pipeline
from gta_core.video import window_views
from tests.helpers import run_cli
from tests.peers import mmaction as peer



def installed_config(name: str) -> str:
    """The pretty_text mmengine saves in meta['cfg'], of a config shipped with mmaction2 1.2.0."""
    import mmaction
    from mmengine.config import Config

    return Config.fromfile(Path(mmaction.__file__).parent / ".mim/configs/recognition" / name).pretty_text


@pytest.mark.parametrize("config, backbone, expected, crop_note", [
    ("i3d/i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.py", "i3d",
     dict(sampling="dense", num_frames=32, frame_interval=2, num_clips=10, crop="three", input_size=256),
     "ThreeCrop 256"),
    ("i3d/i3d_imagenet-pretrained-r50_8xb8-dense-32x2x1-100e_kinetics400-rgb.py", "i3d",
     dict(sampling="window", num_frames=32, frame_interval=2, num_clips=10, crop="three", input_size=256),
     "ThreeCrop 256"),
    ("tsm/tsm_imagenet-pretrained-r50_8xb16-1x1x8-50e_kinetics400-rgb.py", "r2d",
     dict(sampling="tsn", num_frames=8, num_clips=1, crop="ten", input_size=224), "TenCrop 224"),
    ("tsm/tsm_imagenet-pretrained-r50_8xb16-dense-1x1x8-50e_kinetics400-rgb.py", "r2d",
     dict(sampling="window", num_frames=8, frame_interval=8, num_clips=10, crop="ten", input_size=224),
     "TenCrop 224"),
])
def test_published_configs(config, backbone, expected, crop_note):
    fields, notes = read_pipeline(installed_config(config), Path(config).name, backbone, {})
    assert {k: fields[k] for k in expected} == expected
    assert (fields["resize_shorter"], fields["interpolation"], fields["channel_order"]) == (256, "bilinear", "rgb")
    assert fields["mean"] == [0.485, 0.456, 0.406] and fields["std"] == [0.229, 0.224, 0.225]
    assert fields["average_views"] == "prob"
    assert notes["sampling"].startswith("read from the config text's test_pipeline")
    assert crop_note in notes["crop"]


@pytest.mark.parametrize("file_name, backbone, expected, note", [
    ("i3d_r50_32x2x1_100e_kinetics400_rgb_20200614-c25ef9a4.pth", "i3d",
     dict(sampling="dense", num_frames=32, frame_interval=2, num_clips=1), "from the file name's 32x2x1"),
    ("tsm_r50_1x1x8_50e_kinetics400_rgb_20200607-af7fb746.pth", "r2d",
     dict(sampling="tsn", num_frames=8, num_clips=1), "from the file name's 1x1x8"),
    ("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e100_dense_nl.pth", "r2d",
     dict(sampling="window", num_frames=8, frame_interval=8, num_clips=10), "the TSM repository's dense_sample"),
    ("TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment16_e50.pth", "r2d",
     dict(sampling="tsn", num_frames=16), "segment16"),
    ("model.pth", "i3d", dict(sampling="dense", frame_interval=2), "assumed: dense"),
])
def test_file_names(file_name, backbone, expected, note):
    fields, notes = read_pipeline("", file_name, backbone, {}, tsm.RESIZE)
    assert {k: fields[k] for k in expected} == expected
    assert note in notes["sampling"]
    assert fields["interpolation"] == "area" and "PIL" in notes["resize"] and notes["crop"].startswith("assumed")


def test_overrides_win_and_are_recorded():
    text = installed_config("i3d/i3d_imagenet-pretrained-r50-nl-embedded-gaussian_8xb8-32x2x1-100e_kinetics400-rgb.py")
    fields, notes = read_pipeline(text, "x.pth", "i3d", {"num_clips": 1, "crop": "centre", "input_size": 224})
    assert (fields["num_clips"], fields["crop"], fields["input_size"], fields["frame_interval"]) == (1, "centre", 224, 2)
    assert notes["sampling"].endswith("overridden on the command line: num_clips=1")
    assert notes["crop"].endswith("overridden on the command line: crop=centre, input_size=224")


def test_a_published_fixed_size_gives_way_to_a_shorter_side_override():
    """torchvision's enums give resize_to and the rounded centre crop; --resize-shorter asks for a shorter-side
    resize instead, and --crop three for MMAction2's ThreeCrop (whose offsets floor)."""
    published = torchvision_video.published_pipeline({"backbone": "video_resnet"})
    args = ("r3d_18.pth", "video_resnet")
    fields, notes = read_pipeline("", *args, {}, torchvision_video.RESIZE, published, "torchvision's published value")
    assert (fields["resize_to"], fields["crop_rounding"], fields["interpolation"]) == ([128, 171], "round", "bilinear")
    assert notes["resize"] == notes["crop"] == "torchvision's published value"
    fields, notes = read_pipeline("", *args, {"resize_shorter": 160, "crop": "three", "input_size": 160},
                                  torchvision_video.RESIZE, published, "torchvision's published value")
    assert "resize_to" not in fields and "crop_rounding" not in fields and fields["resize_shorter"] == 160
    assert notes["resize"].endswith("overridden on the command line: resize_shorter=160")
    assert torchvision_video.SIZES["video_resnet"]["resize_to"] == [128, 171]        # the table itself untouched


def test_old_normalize_to_bgr_and_unreadable_text():
    # MMAction2 0.x kept the normalisation in the pipeline; to_bgr hands the network BGR, mean in that order.
    text = ("img_norm_cfg = dict(mean=[104, 117, 128], std=[1, 1, 1], to_bgr=True)\n"
            "test_pipeline = [dict(type='SampleFrames', clip_len=1, num_clips=8, test_mode=True),"
            " dict(type='Normalize', mean=[104, 117, 128], std=[1, 1, 1], to_bgr=True)]\n")
    fields, notes = read_pipeline(text, "x.pth", "r2d", {})
    assert fields["channel_order"] == "bgr"
    assert fields["mean"] == [round(v / 255, 6) for v in (128, 117, 104)]          # stored in RGB order
    assert config_values("model = dict(") == {}                                     # not Python: nothing read
    assert config_values("x = os.path.join('a')\ny = dict(a=1)") == {"x": None, "y": {"a": 1}}   # never run


@pytest.mark.parametrize("frames", [30, 132, 400])
@pytest.mark.parametrize("clip_len, interval, clips", [(1, 1, 8), (32, 2, 1)])
def test_window_indices_equal_dense_sample_frames(frames, clip_len, interval, clips):
    """MMAction2's DenseSampleFrames, run here, against window_views (TSM 1x1x8 dense, I3D dense 32x2x1)."""
    pipeline = peer.pipeline([dict(type="DenseSampleFrames", clip_len=clip_len, frame_interval=interval,
                                   num_clips=clips, test_mode=True)])
    theirs = pipeline(dict(total_frames=frames, start_index=0))["frame_inds"]
    length, gap = (clips, 64 // clips) if clip_len == 1 else (clip_len, interval)
    ours = window_views(frames, length, gap, 10, train=False)
    assert [int(i) for i in theirs] == [i for view in ours for i in view]


def test_import_with_cli_overrides(tmp_path):
    """`--sampling dense --clip-len 16 --frame-interval 4 --num-clips 3 --crop three --crop-size 256`."""
    model = peer.i3d_r50(num_classes=10, non_local=False, base_channels=16)
    source = tmp_path / "i3d_r50_32x2x1_tiny.pth"
    peer.save_as_published(model, str(source), "")
    done = run_cli("import", "mmaction2", str(source), "--out", str(tmp_path / "ours"), "--sampling", "dense",
                   "--clip-len", "16", "--frame-interval", "4", "--num-clips", "3", "--crop", "three",
                   "--crop-size", "256")
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert {k: saved[k] for k in ("sampling", "num_frames", "frame_interval", "num_clips", "crop", "input_size")} == {
        "sampling": "dense", "num_frames": 16, "frame_interval": 4, "num_clips": 3, "crop": "three", "input_size": 256}
    pipeline = saved["provenance"]["assumed"]["pipeline"]
    assert pipeline["sampling"] == ("from the file name's 32x2x1 (clip_len × frame_interval × num_clips); test views "
                                    "assumed: one clip; overridden on the command line: sampling=dense, "
                                    "frame_interval=4, num_clips=3")
    assert "--frames 16" in saved["provenance"]["command"] and "--crop three" in saved["provenance"]["command"]
