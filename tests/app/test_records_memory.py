"""Issue 22 in the app: lazy records answer new queries without a model run; one byte budget for all sessions."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from app import engine
from app.memory import ByteLRU
from app.settings import load_settings
from tests.app.conftest import app_on, array, assert_clean, choose, figures, traces
from tests.app.fixtures import make_random_checkpoint


@pytest.fixture(scope="module")
def slowfast_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints_sf_nl")
    make_random_checkpoint(root / "sf_nl", "demo_slowfast_r50_nl", seed=8)
    return root


@pytest.fixture
def app_sf(monkeypatch, slowfast_root, video_root):
    monkeypatch.setenv("GTA_LENS_RECORDS_DTYPE", "float16")
    yield from app_on(monkeypatch, [slowfast_root], video_root)


def cached_results(name: str) -> list[engine.ModelResult]:
    cache = engine.memory_cache()
    return [value for key, (value, _) in cache._items.items() if key[0] == "result" and value.name == name]


def test_slowfast_nl_query_point_reuses_lazy_float16_records(app_sf):
    at = choose(app_sf.run(), ["sf_nl"])
    at.switch_page("views/query.py").run()
    assert_clean(at)
    forwards = engine.INFERENCE_CALLS["sf_nl"]
    assert forwards >= 1
    (result,) = cached_results("sf_nl")
    record = result.capture.records["slow.res3.1"]
    assert record.rows.is_lazy and record.rows.query.dtype.itemsize == 2        # q, k kept as float16
    assert result.capture.nbytes() < record.rows.query.numel() * 2 * 8           # far below dense rows
    before = array(traces(figures(at)["nl_0"], "heatmap")[0]["z"])
    at.slider(key="q_t").set_value(21).run()
    at.slider(key="q_y").set_value(80).run()
    at.slider(key="q_x").set_value(15).run()
    assert_clean(at)
    assert engine.INFERENCE_CALLS["sf_nl"] == forwards                            # no model run for a new query
    heat = traces(figures(at)["nl_0"], "heatmap")
    assert not np.allclose(array(heat[0]["z"]), before)
    assert np.isclose(sum(array(h["z"]).sum() for h in heat), 1.0, atol=1e-3)   # one softmax row over T'·h·w
    assert any("records kept as float16" in c.value for c in at.caption)         # the server panel


def test_byte_budget_evicts_least_recently_used_and_logs(caplog):
    cache = ByteLRU(budget=100)
    cache.put(("result", "a"), "A", 40)
    cache.put(("model", "b"), "B", 40)
    assert cache.get(("result", "a")) == "A"                                     # a is now the most recent
    with caplog.at_level(logging.WARNING, logger="gta_lens.memory"):
        cache.put(("result", "c"), "C", 50)                                       # b goes, not a
        assert cache.put(("result", "d"), "D", 101) == "D"                        # larger than the budget: not kept
    assert cache.get(("model", "b")) is None and cache.get(("result", "d")) is None
    usage = cache.usage()
    assert (usage.used, usage.entries, usage.evictions, usage.by_kind) == (90, 2, 1, {"result": 90})
    assert "evicted ('model', 'b') (0.0 MB)" in caplog.text and "not cached: ('result', 'd')" in caplog.text


def test_records_dtype_and_cache_settings(monkeypatch):
    monkeypatch.delenv("GTA_LENS_RECORDS_DTYPE", raising=False)
    monkeypatch.delenv("GTA_LENS_CACHE_MB", raising=False)
    assert (load_settings([]).records_dtype, load_settings([]).cache_bytes) == ("float32", None)
    settings = load_settings(["--records-dtype", "float16", "--cache-mb", "512"])
    assert (settings.records_dtype, settings.cache_bytes) == ("float16", 512 * 2**20)
    monkeypatch.setenv("GTA_LENS_RECORDS_DTYPE", "int8")
    with pytest.raises(SystemExit, match="GTA_LENS_RECORDS_DTYPE must be one of float32, float16"):
        load_settings([])
