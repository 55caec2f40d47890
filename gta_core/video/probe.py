"""The child-process probe: decode a whole file away from the caller.

Files from outside the project (uploads, user folders) should go through
`probe_video` / `read_clip(..., untrusted=True)`: the whole file is decoded once
in a child process with a timeout and an address-space cap, so a decoder that
crashes (decord is known to segfault on some corrupt input) or hangs costs an
error, not the app.

The child runs `child_command(request)`: `python -I` (isolated: no PYTHON* variables, not the
current folder on sys.path), this package loaded by path under a
private name, so it imports neither `gta_core/__init__` nor torch (it starts in
~0.3 s instead of ~1.6 s), then `child_main`. Tests replace `child_command` to
stand in a child that crashes or hangs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from .decode import decode_pyav, decord_available, inspect_video, quiet_decord
from .limits import VideoError, VideoInfo, VideoLimits

# Loads the package folder in argv[1] as `_gta_video` and runs its probe's child_main(argv[2]).
_CHILD_BOOT = (
    "import importlib.util, sys\n"
    "folder = sys.argv[1]\n"
    "spec = importlib.util.spec_from_file_location('_gta_video', folder + '/__init__.py',\n"
    "                                              submodule_search_locations=[folder])\n"
    "package = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = package\n"
    "spec.loader.exec_module(package)\n"
    "sys.modules['_gta_video.probe'].child_main(sys.argv[2])\n"
)


def child_command(request: str) -> list[str]:
    """The probe child's command line (see the module docstring)."""
    return [sys.executable, "-I", "-c", _CHILD_BOOT, str(Path(__file__).resolve().parent), request]


def _probe_in_process(path: str, limits: VideoLimits, check_decord: bool) -> VideoInfo:
    p = Path(path)
    info = inspect_video(p, limits)
    count, _ = decode_pyav(p, info, limits, keep=None)
    decord_ok = None
    if check_decord and decord_available():
        decord = quiet_decord()
        try:
            vr = decord.VideoReader(path, ctx=decord.cpu(0))
            n = len(vr)
            vr.get_batch(sorted({0, n // 2, n - 1})).asnumpy()
            decord_ok = True
        except Exception:  # noqa: BLE001 - any failure means: use PyAV for this file
            decord_ok = False
    return VideoInfo(**{**asdict(info), "num_frames": count, "decord_ok": decord_ok})


def child_main(request_json: str) -> None:
    """Runs in the child: cap its memory, probe, print one JSON line, {"info": ...} or {"error": ...}."""
    import resource

    request = json.loads(request_json)
    limits = VideoLimits(**request["limits"])
    cap = limits.probe_max_memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        info = _probe_in_process(request["path"], limits, request["check_decord"])
        out = {"info": asdict(info)}
    except VideoError as e:
        out = {"error": {"reason": e.reason, "detail": e.detail}}
    except MemoryError:
        out = {"error": {"reason": "probe_crashed", "detail": "the probe ran out of its memory cap"}}
    except Exception as e:  # noqa: BLE001
        out = {"error": {"reason": "decode_failed", "detail": f"{type(e).__name__}: {e}"}}
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.stdout.flush()


def probe_video(
    path: str | os.PathLike, limits: VideoLimits = VideoLimits(), *, check_decord: bool = True
) -> VideoInfo:
    """Decode the whole file in a child process with a timeout and a memory cap.

    Returns a VideoInfo with num_frames counted by decoding, and decord_ok
    (whether decord opened the file and read its first, middle and last frames
    in the child). Raises VideoError: the file's own problem as the child saw
    it, or "probe_crashed" / "probe_timeout" when the child died or hung.
    """
    path = Path(path).resolve()
    request = json.dumps({"path": str(path), "limits": asdict(limits), "check_decord": check_decord})
    cmd = child_command(request)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, timeout=limits.probe_timeout_s, stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        raise VideoError("probe_timeout", path, f"the probe ran past {limits.probe_timeout_s:g} s") from e
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise VideoError("probe_crashed", path, f"the probe's decoder process died with {name}")
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        out = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise VideoError(
            "probe_crashed", path, f"the probe exited with status {proc.returncode}: {tail[0][:200]}"
        ) from None
    if "error" in out:
        raise VideoError(out["error"]["reason"], path, out["error"]["detail"])
    return VideoInfo(**out["info"])
