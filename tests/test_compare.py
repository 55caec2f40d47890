"""compare: clip by clip equal to evaluate, torchrun == one process, the disk cache, hand-checked report maths."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from gta_core import capture, load_checkpoint
from gta_core.comparison import CompareRequest, cache_key, default_cache_dir
from gta_core.data import synth
from gta_core.data.ssv2 import SSv2Dataset
from gta_core.disagreement import build_report, class_statistics, only_right
from gta_core.evaluate import dataset_for, predict_logits
from gta_core.query_dependence import block_scores

from .helpers import one_thread  # noqa: F401  (fixture)
from .test_cli import one_error_line
from .test_evaluate import make_checkpoint, run_cli
from .test_train import REPO, data_root  # noqa: F401  (fixture: the tiny temporal set, 15 validation clips)

pytestmark = pytest.mark.usefixtures("one_thread")
SAMPLE = REPO / "assets/sample_dataset"
DEMO = [str(REPO / "checkpoints" / name) for name in ("temporal_r2d18_nl", "temporal_r2d18_gta")]


@pytest.fixture(scope="module")
def tiny_checkpoints(data_root, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("compare_ckpts")
    return [str(make_checkpoint(root / name, data_root, f"demo_r2d18_{name}")) for name in ("dnl", "gta")]


def compare_json(*args: str, cache: Path | None = None, nproc: int = 0) -> tuple[dict, str]:
    where = ("--cache-dir", str(cache)) if cache else ("--no-cache",)
    run = run_cli("compare", *args, *where, "--json", "--threads", "1", nproc=nproc)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout), run.stderr


def test_report_by_hand():
    names, classes = ["A", "B"], ["up", "down", "same"]
    # 4 clips; A right on clips 0, 1; B right on clips 1, 2; B calls clip 0 (an "up") "down", its time reversal.
    labels = np.array([0, 0, 1, 2])
    a = np.array([[5, 1, 0], [4, 0, 1], [0, 1, 3], [3, 0, 1]], dtype=np.float32)
    b = np.array([[1, 5, 0], [4, 1, 0], [0, 6, 1], [0, 0, 2]], dtype=np.float32)
    pairs = np.array([1, 0, 2])                      # "same" is a palindrome: its own pair
    report = build_report(names, classes, labels, [a, b], [(str(i), f"{i}.webm") for i in range(4)], pairs, {}, {})
    pair = report["pairwise"][0]
    assert (pair["both_right"], pair["only_a_right"], pair["only_b_right"], pair["both_wrong"]) == (1, 1, 2, 0)
    assert pair["agreement"] == 0.25                                 # only clip 1 gets the same class
    assert pair["accuracy_gap"] == pytest.approx(report["metrics"]["A"]["top1"] - report["metrics"]["B"]["top1"])
    assert report["metrics"]["B"]["reversal_confusions"] == 1       # clip 0; clip 3's error predicts no pair
    assert report["metrics"]["A"]["reversal_confusions"] == 0       # A calls "down" clip 2 "same": no pair
    assert report["clips"][0]["predictions"] == ["up", "down"]
    assert report["clips"][0]["scores"][1] == pytest.approx(np.exp(5) / (np.exp(5) + np.exp(1) + 1), abs=1e-6)
    assert report["per_class"]["up"] == {"support": 2, "accuracy": [1.0, 0.5]}
    assert [c["id"] for c in only_right(report, "A", "B", "only B right")] == ["2", "3"]


def test_class_statistics_by_hand():
    eye, flat = np.eye(2), np.full((2, 2), 0.5)
    per_clip = np.stack([eye, eye, flat, np.array([[1.0, 0.0], [0.0, 0.0]])])
    stats = class_statistics(per_clip, np.array([0, 0, 1, 1]), ["a", "b"])
    assert stats["per_class"]["a"] == eye.tolist()
    assert stats["per_class"]["b"] == [[0.75, 0.25], [0.25, 0.25]]
    # within: class a 0, 0; class b: each clip is ‖[[.25,.25],[.25,.25]]‖ = 0.5 from its mean (norm √0.75).
    assert stats["within_class_spread"] == pytest.approx(2 * 0.5 / np.sqrt(0.75) / 4)
    grand = (eye + np.array([[0.75, 0.25], [0.25, 0.25]])) / 2
    expected = np.mean([np.linalg.norm(m - grand) for m in (eye, grand * 2 - eye)]) / np.linalg.norm(grand)
    assert stats["between_class_spread"] == pytest.approx(expected)


def test_compare_agrees_with_evaluate_on_the_bundled_sample(tmp_path):
    """The bundled sample set loads for both commands; top-1 clip by clip and every count agree."""
    report, _ = compare_json(*DEMO, "--data", str(SAMPLE), cache=tmp_path)
    assert report["num_clips"] == 60 and len(report["clips"]) == 60
    n = report["num_clips"]
    for name, path in zip(report["checkpoints"], DEMO):
        run = run_cli("evaluate", path, "--data", str(SAMPLE), "--json", "--no-reversed")
        assert run.returncode == 0, run.stderr[-2000:]
        evaluated = json.loads(run.stdout)
        mine = report["metrics"][name]
        for key in ("top1", "top5", "per_class_accuracy", "confusion_matrix"):
            assert mine[key] == evaluated[key], key
        # Clip by clip: the confusion matrix rebuilt from the clips' predictions is evaluate's.
        index = {c: i for i, c in enumerate(report["class_names"])}
        confusion = np.zeros((15, 15), dtype=int)
        column = report["checkpoints"].index(name)
        for clip in report["clips"]:
            confusion[index[clip["label"]], index[clip["predictions"][column]]] += 1
        assert confusion.tolist() == evaluated["confusion_matrix"]
    pair = report["pairwise"][0]
    nl, gta = (report["metrics"][name]["top1"] for name in report["checkpoints"])
    assert nl - gta == pytest.approx((pair["only_a_right"] - pair["only_b_right"]) / n, abs=1e-12)
    assert pair["both_right"] + pair["only_a_right"] + pair["only_b_right"] + pair["both_wrong"] == n
    # The shipped models on 60 unseen clips: GTA sees time, NL cannot tell a pair apart.
    assert gta > 0.9 > 0.6 > nl
    assert pair["only_b_right"] > 20 and pair["only_a_right"] <= 2
    nl_metrics = report["metrics"]["temporal_r2d18_nl"]
    assert nl_metrics["reversal_confusions"] > nl_metrics["errors"] / 2          # most NL errors: the reversed class
    assert report["temporal_stats"]["temporal_r2d18_gta"]["res3.1"]["kind"] == "GTA"


def test_clip_predictions_and_class_weights_by_the_library(data_root, tiny_checkpoints, tmp_path):  # noqa: F811
    report, _ = compare_json(*tiny_checkpoints, "--data", str(data_root), "--batch-size", "4", cache=tmp_path)
    dnl = load_checkpoint(tiny_checkpoints[0])
    dnl.model.eval()
    dataset = dataset_for(dnl, data_root, "validation", "auto")
    logits, labels, _ = predict_logits(dnl.model, dataset, batch_size=4)
    names = dnl.config.class_names
    assert [c["predictions"][0] for c in report["clips"]] == [names[i] for i in logits.argmax(axis=1)]
    assert [c["label"] for c in report["clips"]] == [names[i] for i in labels]
    # The class mean of TA weights: capture every clip of one class, average over pixels, then clips.
    label = int(labels[0])
    clips = [dataset[i][0] for i in np.flatnonzero(labels == label)]
    records = [capture(dnl.model, clip[None]).records["res3.1"] for clip in clips]
    expected = np.mean([r.temporal.mean_matrix().numpy() for r in records], axis=0)
    stats = report["temporal_stats"][Path(tiny_checkpoints[0]).name]["res3.1"]
    assert stats["kind"] == "DNL" and np.asarray(stats["per_class"][names[label]]).shape == (4, 4)
    np.testing.assert_allclose(stats["per_class"][names[label]], expected, atol=1e-5)
    np.testing.assert_allclose(np.sum(stats["per_class"][names[label]], axis=1), 1.0, atol=1e-5)   # softmax rows
    gta = report["temporal_stats"][Path(tiny_checkpoints[1]).name]["res3.1"]
    assert gta["kind"] == "GTA" and gta["between_class_spread"] == 0.0 and set(gta["global"]) == {"M̂_P", "M̂_R"}
    # Query dependence per class: the class mean of each clip's score, as block_scores gives it.
    dependence = report["query_dependence"][Path(tiny_checkpoints[0]).name]["res3.1"]
    assert set(dependence) == {"SA", "TA"}
    expected_js = np.mean([block_scores(r)["TA"].js for r in records])
    assert dependence["TA"]["per_class"][names[label]]["js"] == pytest.approx(expected_js, abs=1e-5)
    assert dependence["TA"]["per_class"][names[label]]["clips"] == len(clips)
    gta_parts = report["query_dependence"][Path(tiny_checkpoints[1]).name]["res3.1"]
    assert gta_parts["GTA M̂"]["js"] == 0.0 and gta_parts["GTA M̂"]["explained"] == 1.0


def test_torchrun_gives_the_json_of_one_process(data_root, tiny_checkpoints):  # noqa: F811
    args = (*tiny_checkpoints, "--data", str(data_root), "--batch-size", "4")
    one, _ = compare_json(*args)
    two, _ = compare_json(*args, nproc=2)
    assert one == two
    assert one["num_clips"] == 15


def test_second_run_reads_the_cache_and_changes_invalidate_it(data_root, tiny_checkpoints, tmp_path):  # noqa: F811
    args = (*tiny_checkpoints, "--data", str(data_root), "--batch-size", "4")
    first, stderr = compare_json(*args, cache=tmp_path)
    assert "read from the cache" not in stderr
    cached = tmp_path / f"{first['cache_key']}.json"
    assert cached.is_file()
    # Mark the cached file: a hit returns what the file holds, without running a model.
    marked = json.loads(cached.read_text())
    marked["marker"] = "from the file"
    cached.write_text(json.dumps(marked))
    second, stderr = compare_json(*args, cache=tmp_path)
    assert "read from the cache" in stderr and second.pop("marker") == "from the file"
    assert second == first
    # A video with a new mtime, another batch size, order, weights or folder name: another key, computed again.
    request = CompareRequest(tuple(tiny_checkpoints), str(data_root), batch_size=4)
    video = SSv2Dataset(data_root, "validation").samples[0][0]
    before = cache_key(request)
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 1_000_000))
    assert cache_key(request) != before
    assert cache_key(CompareRequest(tuple(tiny_checkpoints), str(data_root), batch_size=8)) != cache_key(request)
    assert cache_key(CompareRequest(tuple(tiny_checkpoints[::-1]), str(data_root), batch_size=4)) != cache_key(request)
    copy = Path(shutil.copytree(tiny_checkpoints[1], tmp_path / "gta"))
    retrained = CompareRequest((tiny_checkpoints[0], str(copy)), str(data_root), batch_size=4)
    assert cache_key(retrained) == cache_key(request)            # the same files elsewhere: the same report
    weights = load_file(copy / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    save_file(weights, copy / "model.safetensors")
    assert cache_key(retrained) != cache_key(request)
    renamed = Path(shutil.copytree(tiny_checkpoints[1], tmp_path / "gta_v2"))     # names are in the report
    renamed_request = CompareRequest((tiny_checkpoints[0], str(renamed)), str(data_root), batch_size=4)
    assert cache_key(renamed_request) != cache_key(request)
    third, stderr = compare_json(*args, cache=tmp_path)
    assert "read from the cache" not in stderr and "marker" not in third


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GTA_LENS_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / "compare"
    monkeypatch.delenv("GTA_LENS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "gta_lens" / "compare"


def test_bad_input_is_one_line(data_root, tiny_checkpoints, tmp_path):  # noqa: F811
    missing = run_cli("compare", *tiny_checkpoints, "--data", str(tmp_path / "nowhere"), "--no-cache")
    assert "nowhere" in one_error_line(missing)
    twice = run_cli("compare", tiny_checkpoints[0], tiny_checkpoints[0], "--data", str(data_root), "--no-cache")
    assert "two checkpoints are named dnl" in one_error_line(twice)
    appearance = synth.generate(tmp_path / "appearance", seed=1, variant="appearance", videos_per_class=2,
                                size="32x40", frames=4, workers=1)
    other = run_cli("compare", *tiny_checkpoints, "--data", str(appearance), "--no-cache")
    assert "classes the checkpoint does not know" in one_error_line(other)
    (data_root / "videos" / "gone").mkdir(exist_ok=True)
    lost = SSv2Dataset(data_root, "validation").samples[-1][0]
    hidden = lost.rename(data_root / "videos" / "gone" / lost.name)
    try:
        gone = run_cli("compare", *tiny_checkpoints, "--data", str(data_root), "--no-cache")
        assert "is missing" in one_error_line(gone) and lost.stem in gone.stderr
    finally:
        hidden.rename(lost)
    no_ckpt = run_cli("compare", str(tmp_path), "--data", str(data_root), "--no-cache")
    assert "no config.json" in one_error_line(no_ckpt)
    empty = run_cli("compare", *tiny_checkpoints, "--data", str(SAMPLE), "--split", "train", "--no-cache")
    assert "the train split has no clips" in one_error_line(empty)                  # the sample set: all validation
    unwritable = run_cli("compare", *tiny_checkpoints, "--data", str(data_root), "--batch-size", "8",
                         "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "no_such_dir" / "r.json"))
    # After the run (its progress bar, cleared, on stderr before it): one error line, exit code 2.
    assert unwritable.returncode == 2 and unwritable.stderr.splitlines()[-1].startswith("error: cannot write")


def test_bundled_sample_set_is_small_and_regenerable():
    files = [p for p in SAMPLE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 3 * 2**20
    dataset = SSv2Dataset(SAMPLE, "validation")
    assert len(dataset) == 60 and np.bincount([s[1] for s in dataset.samples]).tolist() == [4] * 15
    info = json.loads((SAMPLE / "dataset_info.json").read_text())
    assert info["clutter"] == "low" and "--validation-fraction 1.0" in info["command_line"]
    assert "synth assets/sample_dataset --seed 11" in (REPO / "assets/README.md").read_text()
