"""App latency: from choosing a video to all five views ready, cold and warm, and the query-point update.

    .venv/bin/python bench/bench_app.py [--repeats 5] [--skip-r2d50]

Measured with Streamlit's AppTest, i.e. the server side of a rerun (sidebar,
cached inference, every figure of the page built and serialised); the
browser's own drawing is not included.

- cold: empty caches (no model loaded, nothing captured), first video.
- warm: models loaded, a video not seen before (decode + inference + figures).
- cached: a video seen before (no inference; figures only).
- query: one query-point change on the Query point view (target <= 150 ms).
Setups: the 3 demo checkpoints (NL, DNL, GTA: R2D-18/4, 8x112²),
r2d50_gta at 8x224² with random weights, and an imported MMAction2
TSM-R50-NL (8x224², 400 classes, built and saved by MMAction2 itself, so it
needs the test environment: `make test` installs it) beside two demo models,
with the memory its NL records take. GPU figures only when CUDA is present.
Results also go to bench/results/bench_app.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import streamlit as st  # noqa: E402
import torch  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.app.fixtures import DEMO_CHECKPOINTS, make_random_checkpoint, write_video  # noqa: E402

PAGES = ["views/query.py", "views/temporal.py", "views/regions.py", "views/swapped.py", "views/predictions.py"]
TARGET_WARM_S = 1.5
TARGET_QUERY_S = 0.150


def all_views(at: AppTest, video: str) -> float:
    """Seconds from choosing `video` (on the Predictions view) to all five views built."""
    start = time.perf_counter()
    at.selectbox(key="video_Bundled").set_value(video).run()
    for page in PAGES:
        at.switch_page(page).run()
    elapsed = time.perf_counter() - start
    if at.exception or at.error:
        raise RuntimeError([e.message for e in at.exception] + [e.value for e in at.error])
    return elapsed


def query_updates(at: AppTest, repeats: int) -> list[float]:
    at.switch_page("views/query.py").run()
    times = []
    for i in range(repeats):
        at.slider(key="q_y").set_value(10 + (i * 17) % 80)
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
    return times


def bench_setup(name: str, checkpoints: Path, videos: Path, device: str, repeats: int) -> dict:
    os.environ["GTA_LENS_CHECKPOINTS"] = str(checkpoints)
    os.environ["GTA_LENS_ASSETS"] = str(videos)
    files = sorted(p.name for p in videos.glob("*.mp4"))
    if len(files) < repeats + 1:
        raise RuntimeError(f"need {repeats + 1} videos in {videos}")
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app/main.py"), default_timeout=600)
    at.session_state["device"] = device
    start = time.perf_counter()
    at.run()                                        # first page of the first video, all models cold
    for page in PAGES:
        at.switch_page(page).run()
    cold = time.perf_counter() - start
    if at.exception or at.error:
        raise RuntimeError([e.message for e in at.exception] + [e.value for e in at.error])
    models = len(at.multiselect(key="checkpoints").value)
    warm = [all_views(at, video) for video in files[1: repeats + 1]]
    cached = [all_views(at, video) for video in files[1: repeats + 1]]
    query = query_updates(at, max(repeats, 10))
    result = {
        "setup": name, "device": device, "models": models,
        "cold_s": cold, "warm_s": statistics.median(warm), "cached_s": statistics.median(cached),
        "query_update_s": statistics.median(query), "query_update_max_s": max(query),
        "model_seconds": {r: s for r, s in _model_times(at).items()},
    }
    return result


def _model_times(at: AppTest) -> dict[str, float]:
    ctx = at.session_state["gta_lens_context"]
    return {r.name: round(r.seconds, 4) for r in ctx.results}


def make_imported_checkpoint(tmp: Path, out: Path) -> float:
    """MMAction2 builds and saves a TSM-R50-NL; we import it. Returns its NL records' MB on one clip."""
    from gta_core import capture, load_checkpoint
        from gta_core.importers import import_checkpoint
    from tests.peers import mmaction as peer

    source = tmp / "tsm_r50_nl_1x1x8_kinetics400.pth"
    peer.save_as_published(peer.tsm_r50(num_classes=400, frames=8, non_local=True), str(source), "num_segments=8")
    import_checkpoint("mmaction2", source, out)
    model = load_checkpoint(out).model
    return capture(model, torch.randn(1, 3, 8, 224, 224)).nbytes() / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="unseen videos for the warm median")
    parser.add_argument("--skip-r2d50", action="store_true")
    parser.add_argument("--skip-imported", action="store_true", help="skip the imported TSM-R50-NL setup")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = tmp / "videos"
        videos.mkdir()
        for i in range(args.repeats + 1):               # distinct content: every warm run is a new video
            write_video(videos / f"clip{i}.mp4", frames=24, size=(240, 320), seed=i)
        demo = tmp / "demo"
        for folder, (model_name, seed, variant) in DEMO_CHECKPOINTS.items():
            make_random_checkpoint(demo / folder, model_name, seed, variant)
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for device in devices:
            rows.append(bench_setup("3 demo checkpoints (NL, DNL, GTA) 8x112²", demo, videos, device, args.repeats))
        if not args.skip_r2d50:
            big = tmp / "r2d50"
            make_random_checkpoint(big / "random_r2d50_gta", "r2d50_gta", seed=0)
            for device in devices:
                rows.append(bench_setup("r2d50_gta 8x224² (random weights)", big, videos, device, args.repeats))
        if not args.skip_imported:
            mixed = tmp / "imported"
            nl_record_mb = make_imported_checkpoint(tmp, mixed / "mmaction2_tsm_r50_nl")
            for folder in ("random_demo_nl", "random_demo_gta"):
                model_name, seed, variant = DEMO_CHECKPOINTS[folder]
                make_random_checkpoint(mixed / folder, model_name, seed, variant)
            for device in devices:
                row = bench_setup("MMAction2 TSM-R50-NL 8x224² + demo NL, GTA", mixed, videos, device, args.repeats)
                rows.append({**row, "nl_record_mb": nl_record_mb})

    print(f"# GTA Lens app bench: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not torch.cuda.is_available():
        print("# no CUDA GPU in this session: GPU rows not measured")
    print("# server-side time (AppTest), median over videos; browser drawing not included")
    header = f"{'setup':44} {'device':6} {'cold s':>7} {'warm s':>7} {'cached s':>8} {'query ms':>9} {'max ms':>7}"
    print(header)
    for r in rows:
        print(f"{r['setup']:44} {r['device']:6} {r['cold_s']:7.2f} {r['warm_s']:7.2f} {r['cached_s']:8.2f} "
              f"{r['query_update_s'] * 1000:9.0f} {r['query_update_max_s'] * 1000:7.0f}")
    for r in rows:
        if "nl_record_mb" in r:
            base = next(d for d in rows if d["setup"].startswith("3 demo") and d["device"] == r["device"])
            print(f"# imported ({r['device']}): NL records of one clip {r['nl_record_mb']:.1f} MB; "
                  f"cold {r['cold_s'] / base['cold_s']:.1f}x, warm {r['warm_s'] / base['warm_s']:.1f}x, "
                  f"query {r['query_update_s'] / base['query_update_s']:.1f}x the 3 demo checkpoints")
    demo_rows = [r for r in rows if r["setup"].startswith("3 demo")]
    for r in demo_rows:
        print(f"# targets ({r['device']}): warm {r['warm_s']:.2f} s <= {TARGET_WARM_S} s: "
              f"{'met' if r['warm_s'] <= TARGET_WARM_S else 'MISSED'}; query {r['query_update_s'] * 1000:.0f} ms "
              f"<= {TARGET_QUERY_S * 1000:.0f} ms: {'met' if r['query_update_s'] <= TARGET_QUERY_S else 'MISSED'}")
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_app.json").write_text(json.dumps({"cuda": torch.cuda.is_available(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
