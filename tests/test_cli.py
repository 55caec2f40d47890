"""The command line on bad input: one clear line on stderr and exit code 2, never a traceback."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from gta_core.__main__ import build_parser
from gta_core.checkpoint import WEIGHTS_NAME

from .test_checkpoint import make_checkpoint
from .test_evaluate import run_cli
from .test_train import REPO, data_root  # noqa: F401  (fixture: the tiny temporal set)
from .video_fixtures import COUNTER_FRAMES, counter, encode, over_declare


def one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "ckpt"
    make_checkpoint(folder)
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("cli_video") / "counter.mp4", counter(12), "libx264",
                  options={"preset": "ultrafast"})


def test_train_on_a_missing_folder_or_an_unknown_model_is_one_line(tmp_path):
    missing = run_cli("train", "--data", str(tmp_path / "no_such_data"), "--out", str(tmp_path / "out"))
    assert "no_such_data" in one_error_line(missing) and "not a folder" in missing.stderr
    tmp_path.joinpath("data").mkdir()
    unknown = run_cli("train", "--model", "r2d50_gtaa", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"))
    assert "unknown model 'r2d50_gtaa'" in one_error_line(unknown) and "python -m gta_core models" in unknown.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


TINY_RUN = ("--model", "demo_r2d18_gta", "--width-multiplier", "0.125", "--frames", "4", "--set", "gta_groups=2",
            "--input-size", "28", "--resize-shorter", "32", "--epochs", "1", "--max-steps", "1", "--batch-size", "5",
            "--eval-batch-size", "8", "--workers", "0", "--threads", "1", "--no-progress")


def test_train_refuses_to_overwrite_a_checkpoint_unless_forced(data_root, tmp_path):  # noqa: F811
    out = tmp_path / "ckpt"
    make_checkpoint(out)
    before = (out / WEIGHTS_NAME).read_bytes()
    refused = run_cli("train", "--data", str(data_root), "--out", str(out), *TINY_RUN)
    line = one_error_line(refused)
    assert str(out) in line and "--resume" in line and "--force" in line
    assert (out / WEIGHTS_NAME).read_bytes() == before
    forced = run_cli("train", "--data", str(data_root), "--out", str(out), *TINY_RUN, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["architecture"]["width_multiplier"] == 0.125
    assert load_file(out / WEIGHTS_NAME).keys()


def test_predict_on_cuda_without_a_gpu_is_one_line(checkpoint, video):
    # A real CPU-only process: CUDA_VISIBLE_DEVICES="" hides every GPU from torch.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "gta_core", "predict", str(checkpoint), str(video), "--device", "cuda"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in run.stderr
    assert "--device cuda" in one_error_line(run) and "no GPU" in run.stderr


def test_evaluate_on_cuda_without_a_gpu_is_one_line(checkpoint, tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "gta_core", "evaluate", str(checkpoint), "--data", str(tmp_path),
                          "--device", "cuda"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "--device cuda" in one_error_line(run) and "no GPU" in run.stderr


def test_predict_reads_an_over_declared_avi_and_says_so(checkpoint, tmp_path):
    avi = encode(tmp_path / "counter.avi", counter(), "mjpeg")
    short = over_declare(avi, tmp_path / "over_declared.avi", 130)
    notice = f"the container declares 130 frames but only {COUNTER_FRAMES} decode"
    text = run_cli("predict", str(checkpoint), str(short))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].startswith(f"note: {notice}") and len(text.stdout.splitlines()) == 4
    result = json.loads(run_cli("predict", str(checkpoint), str(short), "--json").stdout)
    assert result["notice"].startswith(notice) and result["num_decoded_frames"] == COUNTER_FRAMES
    assert json.loads(run_cli("predict", str(checkpoint), str(avi), "--json").stdout)["notice"] is None


def _write_weights(path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("entry, problem", [
    ({"dtype": "F32", "shape": "ab", "data_offsets": [0, 8]}, "invalid type: string \"ab\", expected a sequence"),
    ({"dtype": "F32", "shape": [2], "data_offsets": "ab"}, "invalid type: string \"ab\", expected a tuple"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]}, "invalid type: floating point"),
    ({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}, "invalid type: floating point"),
])
def test_info_and_predict_on_a_header_with_wrong_json_types_is_one_line(checkpoint, video, tmp_path, entry, problem):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_bytes((checkpoint / "config.json").read_bytes())
    _write_weights(folder / WEIGHTS_NAME, {"w": entry}, bytes(8))
    for args in (("info", str(folder)), ("predict", str(folder), str(video))):
        line = one_error_line(run_cli(*args))
        assert str(folder / WEIGHTS_NAME) in line and problem in line


def test_overlapping_tensors_are_refused(checkpoint, tmp_path):
    folder = tmp_path / "overlap"
    folder.mkdir()
    (folder / "config.json").write_bytes((checkpoint / "config.json").read_bytes())
    entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    _write_weights(folder / WEIGHTS_NAME, {"a": entry, "b": entry}, bytes(8))
    line = one_error_line(run_cli("predict", str(folder), "x.mp4"))
    assert "not a valid safetensors file" in line and "invalid offset for tensor" in line


def test_export_and_predict_spell_topk_the_same():
    parser = build_parser()
    assert parser.parse_args(["predict", "ckpt", "v.mp4", "--topk", "3"]).topk == 3
    assert parser.parse_args(["export", "ckpt", "v.mp4", "--out", "o", "--topk", "3"]).topk == 3
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["export", "ckpt", "v.mp4", "--out", "o", "--top-k", "3"])
    assert exit_.value.code == 2
