"""Tiny real video files for the video and dataset tests, written once per session.

Frame i of a "counter" video is a flat grey of value 10 + 12·i, so a decoded
frame's mean tells which frame it is, whatever the codec.
"""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

COUNTER_FRAMES = 20
COUNTER_FPS = 8
OVER_DECLARED = 130     # frames the over-declared AVI's header claims; it holds COUNTER_FRAMES


def counter_value(i: int) -> int:
    return 10 + 12 * i


def encode(path: Path, frames, codec: str, rate=COUNTER_FPS, options=None, rotation=None, fmt=None) -> Path:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.thread_count = 1
        stream.options = options or {}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def counter(n=COUNTER_FRAMES, h=64, w=80):
    return [np.full((h, w, 3), counter_value(i), np.uint8) for i in range(n)]


VPX = {"deadline": "realtime", "cpu-used": "8"}
FORMATS = {  # name -> (file name, codec, options)
    "mp4_h264": ("counter.mp4", "libx264", {"preset": "ultrafast"}),
    "webm_vp8": ("counter_vp8.webm", "libvpx", VPX),
    "webm_vp9": ("counter_vp9.webm", "libvpx-vp9", VPX),
    "avi_mjpeg": ("counter.avi", "mjpeg", {}),
}


def over_declare(source: Path, path: Path, declared: int) -> Path:
    """A copy of an AVI whose header declares `declared` frames: the main header's dwTotalFrames
    and the video stream header's dwLength are patched; every frame it holds still decodes.
    Like OpenCV's sample tree.avi (Cinepak: the header declares 444 frames, 68 decode)."""
    data = bytearray(source.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    assert avih > 0 and data[strh + 8:strh + 12] == b"vids", "not an AVI whose first stream is video"
    struct.pack_into("<I", data, avih + 8 + 16, declared)   # AVIMAINHEADER.dwTotalFrames
    struct.pack_into("<I", data, strh + 8 + 32, declared)   # AVISTREAMHEADER.dwLength
    path.write_bytes(bytes(data))
    return path


def mp4_boxes(data: bytes) -> dict[str, int]:
    """{box type: offset} of an mp4's top-level boxes."""
    boxes, pos = {}, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        boxes[kind.decode("latin-1")] = pos
        pos += size
    return boxes


def flip_bytes(data: bytes, lo: float, hi: float, count: int, seed: int) -> bytes:
    out = bytearray(data)
    rng = np.random.default_rng(seed)
    for pos in rng.integers(int(len(data) * lo), int(len(data) * hi), size=count):
        out[pos] ^= 0xFF
    return bytes(out)


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    m: dict[str, Path] = {}
    for name, (file_name, codec, options) in FORMATS.items():
        m[name] = encode(d / file_name, counter(), codec, options=options)
    m["short"] = encode(d / "short.webm", counter(3), "libvpx-vp9", options=VPX)
    half = np.zeros((64, 96, 3), np.uint8)
    half[:, :48] = 255  # white left half
    m["rot90"] = encode(d / "rot90.mp4", [half] * 4, "libx264", rotation=90, options={"preset": "ultrafast"})

    # bad inputs
    (d / "text.mp4").write_text("this is not a video\n" * 50)
    m["not_a_video"] = d / "text.mp4"
    cv2.imwrite(str(d / "still.png"), np.zeros((16, 16, 3), np.uint8))
    m["image"] = d / "still.png"
    (d / "empty.webm").write_bytes(b"")
    m["empty"] = d / "empty.webm"
    for name in ("mp4_h264", "webm_vp9"):
        data = m[name].read_bytes()
        m[f"truncated_{name}"] = d / f"truncated_{m[name].name}"
        m[f"truncated_{name}"].write_bytes(data[: len(data) // 2])
    mp4, avi = m["mp4_h264"].read_bytes(), m["avi_mjpeg"].read_bytes()
    moov = mp4_boxes(mp4)["moov"]
    for name, data in {
        "truncated_mp4_in_index": mp4[: moov + 16],     # cut inside the index ('moov' comes last)
        "truncated_mp4_index_tail": mp4[:-8],           # cut in the index's last bytes
        "truncated_mp4_before_index": mp4[:moov],       # cut where the index would begin
        "truncated_avi_half": avi[: len(avi) // 2],
        "truncated_avi_80": avi[: len(avi) * 8 // 10],
        "truncated_avi_index_tail": avi[:-24],          # cut in the closing index (idx1) only
    }.items():
        m[name] = d / f"{name}.{'mp4' if 'mp4' in name else 'avi'}"
        m[name].write_bytes(data)
    m["flipped_mp4"] = d / "flipped.mp4"
    m["flipped_mp4"].write_bytes(flip_bytes(m["mp4_h264"].read_bytes(), 0.25, 0.75, 40, seed=1))
    m["flipped_avi"] = d / "flipped.avi"
    m["flipped_avi"].write_bytes(flip_bytes(m["avi_mjpeg"].read_bytes(), 0.25, 0.75, 40, seed=1))
    m["flipped_webm"] = d / "flipped.webm"
    m["flipped_webm"].write_bytes(flip_bytes(m["webm_vp9"].read_bytes(), 0.25, 0.75, 40, seed=1))
    m["audio_only"] = _audio_only(d / "audio.wav")
    m["over_declared"] = over_declare(m["avi_mjpeg"], d / "over_declared.avi", OVER_DECLARED)
    m["flipped_over_declared"] = d / "flipped_over_declared.avi"
    m["flipped_over_declared"].write_bytes(flip_bytes(m["over_declared"].read_bytes(), 0.25, 0.75, 40, seed=1))
    # decompression bombs: a ~100 kB file of 5000 frames; a ~130 kB file of one 4608x4608 frame
    m["frame_bomb"] = encode(d / "bomb.webm", [np.zeros((16, 16, 3), np.uint8)] * 5000, "libvpx-vp9",
                             rate=25, options=VPX)
    m["pixel_bomb"] = encode(d / "bomb.avi", [np.zeros((4608, 4608, 3), np.uint8)], "mjpeg")
    m["absurd_fps"] = encode(d / "fast.mp4", counter(4), "libx264", rate=Fraction(100000),
                             options={"preset": "ultrafast"})
    m["absurd_rotation"] = encode(d / "rot45.mp4", counter(4), "libx264", rotation=45,
                                  options={"preset": "ultrafast"})
    return m


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
