"""Issue 13: the Dataset view (AppTest) on a tiny temporal set, and the jump from a clip to Query point."""
from __future__ import annotations

import contextlib
import json
import threading
import time

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app import engine
from gta_core import load_checkpoint
from gta_core.data import synth
from gta_core.disagreement import only_right
from gta_core.figures import gap_order
from tests.app.conftest import ROOT, array, assert_clean, choose, figures, traces

COMPARED = ["a_nl", "b_dnl", "c_gta"]


@pytest.fixture(scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    # 15 temporal classes, one validation clip each (32×40, 8 frames): the random demo models read them at 112².
    return synth.generate(tmp_path_factory.mktemp("dataset") / "tiny_temporal", seed=5, videos_per_class=2,
                          size="32x40", frames=8, workers=1)


@pytest.fixture
def dataset_app(app, monkeypatch, dataset_root, tmp_path, one_thread):
    monkeypatch.setenv("GTA_LENS_DATA", str(dataset_root))
    monkeypatch.setenv("GTA_LENS_CACHE", str(tmp_path / "cache"))
    return app


HOLD_S = 30.0


@contextlib.contextmanager
def lock_held_elsewhere():
    """engine.model_lock() held by another thread (as by another session's capture) for at most HOLD_S."""
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.model_lock():
            held.set()
            done.wait(HOLD_S)
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        yield
    finally:
        done.set()
        holder.join()


def open_view(at: AppTest) -> AppTest:
    at = choose(at.run(), [*COMPARED, "d_gta_appearance"])
    return at.switch_page("views/dataset.py").run()


def cached_report(tmp_path) -> dict:
    files = list((tmp_path / "cache" / "compare").glob("*.json"))
    assert len(files) == 1
    return json.loads(files[0].read_text())


def test_dataset_view_draws_the_report(dataset_app, dataset_root, tmp_path, checkpoint_root):
    at = choose(dataset_app.run(), [*COMPARED, "d_gta_appearance"])     # the sidebar's clip: models cached
    # Another session's capture holds the model lock: the comparison runs its own copies of the checkpoints
    # and never waits for it (if it did, it would wait until the holder lets go after HOLD_S).
    start = time.perf_counter()
    with lock_held_elsewhere():
        at.switch_page("views/dataset.py").run(timeout=HOLD_S + 60)
    assert time.perf_counter() - start < HOLD_S
    assert_clean(at)
    report = cached_report(tmp_path)                     # what the view computed, cached for the CLI too
    assert report["checkpoints"] == COMPARED and report["num_clips"] == 15
    assert any("Not compared: d_gta_appearance" in c.value for c in at.caption)
    assert at.selectbox(key="dataset_a").value == "a_nl" and at.selectbox(key="dataset_b").value == "c_gta"
    pair = report["pairwise"][1]                         # a_nl vs c_gta
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["only A right"] == str(pair["only_a_right"]) and metrics["only B right"] == str(pair["only_b_right"])
    figs = figures(at)
    # Per-class bars in the order of the gap, values from the report.
    acc = [[report["per_class"][c]["accuracy"][i] for c in report["class_names"]] for i in (0, 2)]
    order = gap_order(*acc)[::-1]
    bars = traces(figs["dataset_per_class"], "bar")
    np.testing.assert_allclose(array(bars[1]["x"]), [acc[1][i] for i in order])
    assert bars[1]["customdata"] == [report["class_names"][i] for i in order]
    # Confusion matrices: the report's counts; red squares on (class, its time-reversal pair).
    z = array(traces(figs["dataset_confusion_a"], "heatmap")[0]["z"])
    assert z.tolist() == report["metrics"]["a_nl"]["confusion_matrix"] and z.sum() == 15
    marks = traces(figs["dataset_confusion_a"], "scatter")[0]
    pairs = json.loads((dataset_root / "reverse_pairs.json").read_text())
    names = report["class_names"]
    expected = sorted((names.index(a), names.index(b)) for a, b in pairs.items() if a != b)
    assert sorted(zip(array(marks["y"]).tolist(), array(marks["x"]).tolist())) == expected
    # The clip table lists exactly the clips only B (GTA) gets right.
    table = at.dataframe(key="dataset_clips").value
    assert table["clip"].tolist() == [c["id"] for c in only_right(report, "a_nl", "c_gta", "only B right")]
    # Per-class TA weights of DNL: 15 class matrices of 8×8 whose rows are averaged softmax rows (sum 1).
    grid = traces(figs["dataset_class_matrices"], "heatmap")
    assert len(grid) == 15 and all(array(h["z"]).shape == (8, 8) for h in grid)
    assert all(np.allclose(array(h["z"]).sum(axis=1), 1.0, atol=1e-4) for h in grid)
    # GTA's global M̂: mean |M̂_P| over groups and heads, read from the checkpoint's weights.
    model = load_checkpoint(checkpoint_root / "c_gta").model
    weights = model.temporal_blocks()["res3.1"].global_temporal.pixel_matrix.detach().abs()
    expected_m = weights.reshape(-1, 8, 8).mean(dim=0).numpy()
    np.testing.assert_allclose(array(traces(figs["dataset_global_m"], "heatmap")[0]["z"]), expected_m, atol=1e-5)


def test_a_clip_opens_in_query_point_and_the_link_reopens_it(dataset_app, tmp_path):
    at = open_view(dataset_app)
    at.radio(key="dataset_filter").set_value("all clips").run()
    table = at.dataframe(key="dataset_clips").value
    clip = table["clip"].tolist()[3]
    at.session_state["dataset_clips"] = {"selection": {"rows": [3], "columns": [], "cells": []}}
    at.run()
    assert_clean(at)
    assert at.subheader[0].value == "Query point"
    assert at.radio(key="video_source").value == "Dataset"
    assert at.selectbox(key="video_Dataset").value == f"validation/{clip}"
    assert [o.split(" · ")[0] for o in at.multiselect(key="checkpoints").value] == COMPARED
    assert {"nl_0", "spatial_1", "temporal_1", "spatial_2", "global_2"} <= set(figures(at))
    params = dict(at.query_params)
    assert params["source"] == "Dataset" and params["video"] == f"validation/{clip}" and params["view"] == "query"
    # A colleague opening the link sees the same clip; back in the Dataset view, the filter is kept.
    colleague = AppTest.from_file(str(ROOT / "app/main.py"), default_timeout=60)
    colleague.query_params.update(params)
    colleague.run()
    assert_clean(colleague)
    assert colleague.selectbox(key="video_Dataset").value == f"validation/{clip}"
    at.switch_page("views/dataset.py").run()
    assert at.radio(key="dataset_filter").value == "all clips"


def test_second_visit_reads_the_disk_cache(dataset_app, tmp_path):
    open_view(dataset_app)
    path = next((tmp_path / "cache" / "compare").glob("*.json"))
    report = json.loads(path.read_text())
    report["metrics"]["a_nl"]["errors"] = 999             # a mark only the cached file carries
    path.write_text(json.dumps(report))
    again = open_view(AppTest.from_file(str(ROOT / "app/main.py"), default_timeout=60))
    assert_clean(again)
    summary = again.dataframe[0].value                    # the per-checkpoint summary, above the clip table
    assert summary.loc[summary["checkpoint"] == "a_nl", "errors"].item() == 999


def test_fewer_than_two_comparable_checkpoints_is_a_message(dataset_app):
    at = choose(dataset_app.run(), ["c_gta", "d_gta_appearance"])
    at.switch_page("views/dataset.py").run()
    assert not at.exception
    assert any("Choose 2–4 checkpoints" in i.value for i in at.info)
