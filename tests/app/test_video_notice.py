"""AppTest: a video whose container over-declares its frames is shown, with one line saying so."""
from __future__ import annotations

from tests.app.conftest import assert_clean, choose, figures, traces
from tests.video_fixtures import COUNTER_FRAMES, counter, encode, over_declare


def test_over_declared_upload_plays_and_says_how_many_frames_decode(app, tmp_path):
    avi = encode(tmp_path / "counter.avi", counter(h=128, w=160), "mjpeg")
    short = over_declare(avi, tmp_path / "over_declared.avi", 130)
    at = choose(app.run(), ["c_gta"])
    at.radio(key="video_source").set_value("Upload").run()
    at.file_uploader(key="video_upload").upload("tree.avi", short.read_bytes()).run()
    assert_clean(at)
    assert any(f"{COUNTER_FRAMES} decoded frames" in m.value for m in at.markdown)
    notes = [i.value for i in at.info if "declares 130 frames" in i.value]
    assert notes == [f"Note: the container declares 130 frames but only {COUNTER_FRAMES} decode; "
                     f"the clip is sampled from those {COUNTER_FRAMES}."]
    assert len(traces(figures(at)["strip_0"], "image")) == 8
