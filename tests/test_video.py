"""gta_core.video on real files: formats, sampling, every bad input, the probe."""
from __future__ import annotations

import sys

import av
import numpy as np
import pytest
import torch

from gta_core.video import (
    ClipSpec,
    VideoError,
    VideoLimits,
    probe_video,
    read_clip,
    temporal_sample_indices,
)
from gta_core.video import probe as probe_module
from tests.video_fixtures import COUNTER_FRAMES, FORMATS, OVER_DECLARED, counter_value, media  # noqa: F401

SPEC = ClipSpec(num_frames=8, input_size=48, resize_shorter=64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


# --- sampling: hand-computed cases ---------------------------------------------------

@pytest.mark.parametrize(
    "n, t, expected",
    [
        (16, 8, [1, 3, 5, 7, 9, 11, 13, 15]),   # segments of 2, centres at 1, 3, ...
        (10, 4, [1, 3, 6, 8]),                  # (i + 0.5) * 2.5 -> 1.25, 3.75, 6.25, 8.75
        (3, 8, [0, 0, 0, 1, 1, 2, 2, 2]),       # fewer frames than T: repeats
        (1, 4, [0, 0, 0, 0]),
        (8, 8, list(range(8))),
    ],
)
def test_test_time_sampling_takes_segment_centres(n, t, expected):
    assert temporal_sample_indices(n, t, train=False) == expected


def test_train_sampling_draws_one_frame_inside_each_segment():
    n, t = 10, 4
    bounds = [(int(i * n / t), int(np.ceil((i + 1) * n / t)) - 1) for i in range(t)]  # [0,2],[2,4],[5,7],[7,9]
    seen = [set() for _ in range(t)]
    rng = np.random.default_rng(0)
    for _ in range(300):
        idx = temporal_sample_indices(n, t, train=True, rng=rng)
        assert idx == sorted(idx)
        for i, (lo, hi) in enumerate(bounds):
            assert lo <= idx[i] <= hi
            seen[i].add(idx[i])
    assert [min(s) for s in seen] == [lo for lo, _ in bounds]
    assert [max(s) for s in seen] == [hi for _, hi in bounds]
    assert temporal_sample_indices(n, t, True, rng=7) == temporal_sample_indices(n, t, True, rng=7)


def test_sampling_rejects_nonsense():
    with pytest.raises(ValueError):
        temporal_sample_indices(0, 8, train=False)


def test_clip_spec_from_config_and_validation():
    cfg = {"num_frames": 8, "input_size": 112, "resize_shorter": 128, "mean": [0.4, 0.4, 0.4],
           "std": [0.2, 0.2, 0.2], "arch": "ignored"}
    spec = ClipSpec.from_config(cfg)
    assert spec == ClipSpec(8, 112, 128, (0.4, 0.4, 0.4), (0.2, 0.2, 0.2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ClipSpec.from_config({**cfg, "mean": [123.7, 116.3, 103.5]})
    with pytest.raises(ValueError):
        ClipSpec(8, 256, 128)
    with pytest.raises(KeyError):
        ClipSpec.from_config({"num_frames": 8})


# --- formats, both decoders ---------------------------------------------------------

@pytest.mark.parametrize("decoder", ["decord", "pyav"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_decodes_the_right_frames(media, fmt, decoder):
    clip = read_clip(media[fmt], SPEC, decoder=decoder)
    assert clip.decoder == decoder
    assert clip.num_decoded_frames == COUNTER_FRAMES and not clip.repeated
    assert clip.frame_indices == temporal_sample_indices(COUNTER_FRAMES, 8, train=False)
    assert clip.tensor.shape == (3, 8, 48, 48) and clip.tensor.dtype == torch.float32
    assert clip.frames_uint8.shape == (8, 48, 48, 3) and clip.frames_uint8.dtype == np.uint8
    means = clip.frames_uint8.reshape(8, -1).mean(1)
    expected = np.array([counter_value(i) for i in clip.frame_indices])
    assert np.abs(means - expected).max() < 5, (means, expected)  # the right frames, not neighbours
    # normalisation: (x / 255 - 0.5) / 0.25
    ref = (torch.from_numpy(clip.frames_uint8).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(clip.tensor, ref.permute(3, 0, 1, 2))


def test_train_sampling_is_reproducible_and_auto_prefers_decord(media):
    a = read_clip(media["webm_vp9"], SPEC, train=True, rng=3)
    b = read_clip(media["webm_vp9"], SPEC, train=True, rng=np.random.default_rng(3))
    assert a.decoder == "decord"
    assert a.frame_indices == b.frame_indices
    np.testing.assert_array_equal(a.frames_uint8, b.frames_uint8)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_short_video_is_sampled_with_repeats_and_says_so(media, decoder):
    clip = read_clip(media["short"], SPEC, decoder=decoder)
    assert clip.num_decoded_frames == 3 and clip.repeated
    assert clip.frame_indices == [0, 0, 0, 1, 1, 2, 2, 2]
    np.testing.assert_array_equal(clip.frames_uint8[0], clip.frames_uint8[2])


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_rotation_metadata_is_applied(media, decoder):
    # the frame's white left half ends at the bottom after a 90° counter-clockwise turn
    spec = ClipSpec(num_frames=2, input_size=64, resize_shorter=64, mean=(0, 0, 0), std=(1, 1, 1))
    clip = read_clip(media["rot90"], spec, decoder=decoder)
    assert clip.info.rotation == 90
    frame = clip.frames_uint8[0].mean(-1)
    assert frame[40:].mean() > 200 and frame[:24].mean() < 50


@pytest.mark.parametrize("decoder, untrusted", [("auto", False), ("decord", False), ("pyav", False),
                                               ("auto", True), ("pyav", True)])
def test_over_declared_frame_count_reads_what_decodes_and_says_so(media, decoder, untrusted):
    # The header claims 130 frames, 20 decode cleanly: a video (as tree.avi plays everywhere), not a corrupt file.
    clip = read_clip(media["over_declared"], SPEC, decoder=decoder, untrusted=untrusted)
    assert clip.info.declared_frames == OVER_DECLARED and clip.num_decoded_frames == COUNTER_FRAMES
    assert clip.frame_indices == [1, 3, 6, 8, 11, 13, 16, 18]        # TSN centres of 20 frames, not of 130
    means = clip.frames_uint8.reshape(8, -1).mean(1)
    assert np.abs(means - [counter_value(i) for i in clip.frame_indices]).max() < 5
    assert clip.notice == "the container declares 130 frames but only 20 decode; the clip is sampled from those 20"
    assert read_clip(media["avi_mjpeg"], SPEC, decoder=decoder, untrusted=untrusted).notice is None


@pytest.mark.parametrize("decoder", ["auto", "decord", "pyav"])
def test_decoder_log_lines_do_not_reach_the_terminal(media, capfd, decoder):
    # Damaged H.264: FFmpeg logs "[h264 @ 0x...] error while decoding MB ..." unless silenced.
    capfd.readouterr()
    try:
        read_clip(media["flipped_mp4"], SPEC, decoder=decoder)
    except VideoError:
        pass
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


# --- bad input: one exception type, a specific reason --------------------------------

@pytest.mark.parametrize(
    "name, reason, decoder",
    [
        ("not_a_video", "not_a_video", "auto"),
        ("image", "not_a_video", "auto"),
        ("empty", "empty_file", "auto"),
        ("truncated_mp4_h264", "truncated", "auto"),
        ("truncated_webm_vp9", "truncated", "auto"),
        ("flipped_webm", "corrupt", "auto"),
        ("flipped_avi", "corrupt", "auto"),        # decord fails, PyAV names the problem
        ("flipped_mp4", "corrupt", "pyav"),        # decord conceals H.264 damage; PyAV flags it
        ("flipped_over_declared", "corrupt", "auto"),    # over-declared and damaged: still refused
        ("flipped_over_declared", "corrupt", "decord"),
        ("flipped_over_declared", "corrupt", "pyav"),
        ("audio_only", "no_video_stream", "auto"),
        ("frame_bomb", "too_many_frames", "auto"),
        ("pixel_bomb", "resolution_too_large", "auto"),
        ("absurd_fps", "bad_metadata", "auto"),
        ("absurd_rotation", "bad_metadata", "auto"),
    ],
)
def test_bad_input_gets_its_reason(media, name, reason, decoder):
    with pytest.raises(VideoError) as err:
        read_clip(media[name], SPEC, decoder=decoder)
    assert err.value.reason == reason
    assert str(media[name]) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(VideoError) as err:
        read_clip(tmp_path / "nope.webm", SPEC)
    assert err.value.reason == "missing_file"


@pytest.mark.parametrize(
    "limits, reason",
    [
        (VideoLimits(max_bytes=100), "file_too_large"),
        (VideoLimits(max_duration_s=1.0), "duration_too_long"),   # 20 frames at 8 fps = 2.5 s
        (VideoLimits(max_frames=10), "too_many_frames"),
        (VideoLimits(max_side=32), "resolution_too_large"),
    ],
)
def test_limits_are_configurable(media, limits, reason):
    with pytest.raises(VideoError) as err:
        read_clip(media["webm_vp9"], SPEC, limits=limits)
    assert err.value.reason == reason


def test_video_error_pickles():
    import pickle

    e = pickle.loads(pickle.dumps(VideoError("truncated", "/x.webm", "cut")))
    assert (e.reason, e.path, e.detail) == ("truncated", "/x.webm", "cut")


# --- the child-process probe ---------------------------------------------------------

def test_probe_counts_decoded_frames(media):
    info = probe_video(media["webm_vp9"])
    assert (info.num_frames, info.width, info.height, info.codec) == (COUNTER_FRAMES, 80, 64, "vp9")
    assert info.fps == 8 and info.decord_ok is True


@pytest.mark.parametrize("name, reason", [("flipped_mp4", "corrupt"), ("truncated_mp4_h264", "truncated"),
                                          ("frame_bomb", "too_many_frames")])
def test_probe_reports_the_files_problem(media, name, reason):
    with pytest.raises(VideoError) as err:
        probe_video(media[name])
    assert err.value.reason == reason


def test_untrusted_read_probes_first(media):
    clip = read_clip(media["mp4_h264"], SPEC, untrusted=True)
    # Issue 20: an untrusted file is decoded by PyAV only (decord can segfault the calling process).
    assert clip.info.num_frames == COUNTER_FRAMES and clip.decoder == "pyav"
    with pytest.raises(VideoError) as err:
        read_clip(media["flipped_mp4"], SPEC, untrusted=True)  # the probe catches what decord would hide
    assert err.value.reason == "corrupt"


# The child's entry point, replaced: a child that crashes or hangs before it decodes anything.
FAULTY_CHILDREN = {
    "segfault": "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
    "abort": "import os; os.abort()",
    "hang": "import time; time.sleep(10 ** 6)",
}


def faulty_child(monkeypatch, fault: str) -> None:
    monkeypatch.setattr(probe_module, "child_command", lambda request: [sys.executable, "-c", FAULTY_CHILDREN[fault]])


@pytest.mark.parametrize("fault", ["segfault", "abort"])
def test_probe_survives_a_crashing_decoder(media, monkeypatch, fault):
    faulty_child(monkeypatch, fault)
    with pytest.raises(VideoError) as err:
        read_clip(media["webm_vp9"], SPEC, untrusted=True)
    assert err.value.reason == "probe_crashed"
    assert ("SIGSEGV" if fault == "segfault" else "SIGABRT") in str(err.value)
    monkeypatch.undo()
    assert probe_video(media["webm_vp9"]).num_frames == COUNTER_FRAMES  # and we are still alive


def test_probe_times_out_on_a_hanging_decoder(media, monkeypatch):
    faulty_child(monkeypatch, "hang")
    with pytest.raises(VideoError) as err:
        probe_video(media["webm_vp9"], VideoLimits(probe_timeout_s=1.5))
    assert err.value.reason == "probe_timeout"


# --- truncation: what PyAV misses is checked here, what it reports is left to it --------

def pyav_alone(path) -> tuple[str, int]:
    """What PyAV makes of a file by itself: ("open failed" | "no video stream" | "error" | "decoded", frames)."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, EOFError):
        return "open failed", 0
    with container:
        if not container.streams.video:
            return "no video stream", 0
        frames = 0
        try:
            for _ in container.decode(video=0):
                frames += 1
        except av.error.FFmpegError:
            return "error", frames
    return "decoded", frames


@pytest.mark.parametrize(
    "name, alone",
    [
        ("truncated_mp4_in_index", ("no video stream", 0)),
        ("truncated_mp4_index_tail", ("decoded", COUNTER_FRAMES)),
        ("truncated_webm_vp9", ("decoded", "fewer")),
    ],
)
def test_truncation_pyav_misses_is_caught(media, name, alone):
    outcome, frames = pyav_alone(media[name])
    assert outcome == alone[0], "PyAV now sees this cut: the size check for it can go"
    assert frames == alone[1] if alone[1] != "fewer" else 0 < frames < COUNTER_FRAMES
    with pytest.raises(VideoError) as err:
        read_clip(media[name], SPEC)
    assert err.value.reason == "truncated"


@pytest.mark.parametrize("name", ["truncated_mp4_before_index", "truncated_avi_half", "truncated_avi_80"])
def test_truncation_pyav_reports_is_left_to_it(media, name):
    assert pyav_alone(media[name])[0] in ("open failed", "error")
    with pytest.raises(VideoError) as err:
        read_clip(media[name], SPEC)
    assert err.value.reason == "corrupt"


def test_an_avi_cut_only_in_its_closing_index_is_read_whole(media):
    assert pyav_alone(media["truncated_avi_index_tail"]) == ("decoded", COUNTER_FRAMES)
    clip = read_clip(media["truncated_avi_index_tail"], SPEC)
    assert clip.num_decoded_frames == COUNTER_FRAMES and clip.notice is None
