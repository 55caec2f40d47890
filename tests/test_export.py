"""`python -m gta_core export`: a folder of 10 tiny videos, one tiny GTA checkpoint, every file checked."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from gta_core import CheckpointConfig, create_model, save_checkpoint
from gta_core.__main__ import main
from gta_core.export import NO_BROWSER_NOTE, ExportOptions, figure_entries, write_pngs
from gta_core.video import ClipSpec, read_clip
from tests.app.fixtures import write_video

from .chromium import require_chromium
from .helpers import activate_blocks, one_thread  # noqa: F401  (fixture)

VIDEOS = 10
SIZE = 48                       # input crop: res3 6×6, res4 3×3, res5 2×2
CLASSES = ["moving left", "moving right", "covering", "uncovering"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_gta(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = activate_blocks(create_model("demo_r2d18_gta", num_classes=len(CLASSES)))
    config = CheckpointConfig(
        architecture=model.config.to_dict(), class_names=CLASSES, model_name="demo_r2d18_gta",
        input_size=SIZE, resize_shorter=54, provenance={"random_weights": True},
    )
    return save_checkpoint(tmp_path_factory.mktemp("export_ckpt") / "tiny_gta", model, config)


@pytest.fixture(scope="module")
def exported(tiny_gta, tmp_path_factory):
    require_chromium()
    videos = tmp_path_factory.mktemp("export_videos")
    for i in range(VIDEOS):
        write_video(videos / f"clip_{i:02d}.mp4", frames=10, size=(56, 72), seed=i)
    (videos / "notes.txt").write_text("not a video")                 # ignored
    out = tmp_path_factory.mktemp("export_out")
    code = main([
        "export", str(tiny_gta), str(videos), "--out", str(out), "--ig-steps", "4",
        "--internal-batch-size", "4", "--knockout", "blocks", "--no-progress",
    ])
    return code, videos, out


# Per video: the figure files the default view set draws for one GTA model with blocks res3.1 and res4.1.
PER_BLOCK = ["query/{b}_tiny_gta_spatial", "query/{b}_tiny_gta_global",
             "temporal/{b}_tiny_gta_mean_M__P", "temporal/{b}_tiny_gta_mean_M__R",
             "temporal/{b}_tiny_gta_M__P_heads", "temporal/{b}_tiny_gta_M__R_heads", "regions/{b}_tiny_gta"]
PER_VIDEO = ["predictions/topk_tiny_gta", "predictions/frames_tiny_gta", "attributions/ig_tiny_gta",
             "attributions/gradcam_tiny_gta", "attributions/curves_tiny_gta", "attributions/occlusion_tiny_gta",
             "knockout/knockout_tiny_gta", "order/order_probe"]
EXPECTED_PNGS = sorted(PER_VIDEO + [p.format(b=b) for b in ("res3.1", "res4.1") for p in PER_BLOCK])


def test_export_writes_every_file_for_a_folder_of_ten_videos(exported):
    code, videos, out = exported
    assert code == 0
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == [f"clip_{i:02d}" for i in range(VIDEOS)]
    for folder in (out / name for name in folders):
        pngs = sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.png"))
        assert pngs == EXPECTED_PNGS
        for name in ("figures.html", "attention.mp4", "summary.json"):
            assert (folder / name).stat().st_size > 0


def test_exported_pngs_are_non_empty_images_of_the_figure_size(exported):
    _, _, out = exported
    folder = out / "clip_03"
    sizes = {}
    for path in folder.rglob("*.png"):
        with Image.open(path) as image:
            assert image.format == "PNG"
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.std() > 5, path                                  # something is drawn, not a blank canvas
        sizes[str(path.relative_to(folder))] = pixels.shape
    # Width: plotly's default 700 (the builders set none); height: the builder's layout.height.
    assert sizes["predictions/topk_tiny_gta.png"] == (60 + 28 * 4, 700, 3)        # top-k of 4 classes
    assert sizes["temporal/res3.1_tiny_gta_mean_M__P.png"] == (320, 700, 3)
    assert sizes["temporal/res3.1_tiny_gta_M__P_heads.png"] == (84 + 4 * 110, 700, 3)  # G = 4 groups, with axes
    assert sizes["order/order_probe.png"] == (340, 700, 3)
    assert all(shape[1] == 700 for shape in sizes.values())


def test_exported_html_is_standalone(exported):
    _, _, out = exported
    page = (out / "clip_00" / "figures.html").read_text()
    assert len(page) > 3_000_000                                       # plotly.js is inside
    assert not re.search(r"<script[^>]+src=", page)                    # nothing to fetch
    assert "window.Plotly" in page or "Plotly.newPlot" in page
    assert page.count("Plotly.newPlot") == len(EXPECTED_PNGS)          # the same figures as the PNGs
    for title in ("Predictions", "Query point", "Attributions", "Order probe", "Knockout"):
        assert f"<h2>{title}</h2>" in page


def test_exported_mp4_decodes_back_to_the_overlay_frames(exported):
    _, _, out = exported
    path = out / "clip_05" / "attention.mp4"
    # One column (one model): attention overlay on top, Grad-CAM below, each SIZE×SIZE; 8 frames.
    clip = read_clip(path, ClipSpec(num_frames=8, input_size=SIZE, resize_shorter=SIZE), decoder="pyav")
    assert clip.num_decoded_frames == 8 and not clip.repeated
    decoded = clip.frames_uint8                                       # centre crop of the 2·SIZE × SIZE frames
    assert decoded.shape == (8, SIZE, SIZE, 3)
    assert decoded.std() > 10
    summary = json.loads((out / "clip_05" / "summary.json").read_text())
    model = summary["models"]["tiny_gta"]
    assert len(model["integrated_gradients"]["mass"]) == 8
    assert [k["component"] for k in model["knockout"]] == ["res3.1 block", "res4.1 block"]
    assert set(model["order_probe"]) == {"original", "reversed", "shuffled"}


def test_png_is_plotlys_drawing_of_the_figure(tmp_path):
    require_chromium()
    """A heatmap of known values at a fixed size: each cell's pixels have its colour on the scale.
    Plotly draws row 0 at the bottom; with no margins a 3 × 2 heatmap fills 300 × 200 pixels."""
    import plotly.colors

    z = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
    figure = go.Figure(go.Heatmap(z=z, zmin=0, zmax=5, colorscale="Viridis", showscale=False))
    figure.update_layout(width=300, height=200, margin=dict(l=0, r=0, t=0, b=0),
                         xaxis_visible=False, yaxis_visible=False)
    pie = go.Figure(go.Pie(values=[1, 2]))            # a trace the old matplotlib re-renderer refused
    heatmap_png, pie_png = write_pngs([(figure, tmp_path / "heatmap.png"), (pie, tmp_path / "pie.png")])
    with Image.open(heatmap_png) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB")).astype(int)
    assert pixels.shape == (200, 300, 3)
    for row in range(2):
        for col in range(3):
            expected = plotly.colors.unlabel_rgb(plotly.colors.sample_colorscale("Viridis", [z[row, col] / 5])[0])
            y, x = 200 - (row * 100 + 50), col * 100 + 50
            assert np.abs(pixels[y - 20:y + 20, x - 20:x + 20] - np.array(expected)).max() <= 2, (row, col)
    with Image.open(pie_png) as image:
        assert image.size == (700, 450)                 # plotly.js's size for a layout that sets none


def test_without_a_browser_export_writes_html_and_mp4_and_says_so_once(tiny_gta, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(2):
        write_video(videos / f"clip_{i}.mp4", frames=10, size=(56, 72), seed=i)
    out = tmp_path / "out"
    code = main(["export", str(tiny_gta), str(videos), "--out", str(out), "--ig-steps", "2",
                 "--internal-batch-size", "2", "--knockout", "none", "--no-progress",
                 "--browser", str(tmp_path / "no-chromium-here")])
    assert code == 0
    assert not list(out.rglob("*.png"))
    for i in range(2):
        for name in ("figures.html", "attention.mp4", "summary.json"):
            assert (out / f"clip_{i}" / name).stat().st_size > 0
    err = capsys.readouterr().err
    assert err.count(NO_BROWSER_NOTE) == 1 and "apt-get install chromium" in NO_BROWSER_NOTE


def test_bad_inputs_give_clear_errors(tiny_gta, tmp_path, capsys):
    assert main(["export", str(tiny_gta), str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such video or folder" in capsys.readouterr().err
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    code = main(["export", str(tiny_gta), str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 1
    assert "skipped" in capsys.readouterr().err
    assert main(["export", str(tmp_path), str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(ValueError, match="knockout"):
        ExportOptions(knockout="some")
    assert figure_entries([], {}) == []


def test_progress_moves_one_step_per_stage(tiny_gta, tmp_path, capsys):
    """The bar advances per model stage, per view's PNGs, for the HTML and the MP4: never stuck at 0/1."""
    from gta_core.export import MODEL_STEPS, VIDEO_STEPS, VIEWS, export_steps

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(2):
        write_video(videos / f"clip_{i}.mp4", frames=10, size=(56, 72), seed=i)
    (videos / "broken.mp4").write_bytes(b"\x00" * 64)                    # fails: its steps are skipped
    code = main(["export", str(tiny_gta), str(videos), "--out", str(tmp_path / "out"), "--ig-steps", "2",
                 "--internal-batch-size", "2", "--knockout", "blocks"])
    assert code == 1                                                      # one video skipped
    err = capsys.readouterr().err
    per_video = MODEL_STEPS + len(VIEWS) + VIDEO_STEPS
    assert export_steps(3, 1) == 3 * per_video == 3 * 16
    counts = [int(n) for n in re.findall(r"\| *(\d+)/48 ", err.replace("\r", "\n"))]
    assert counts[-1] == 48                                               # finished
    for label in ("attention captured", "Integrated Gradients", "knockouts", "query figures", "MP4"):
        assert label in err, label


def test_export_of_a_slowfast_beside_a_2d_model_names_time_steps(tiny_gta, tmp_path):
    """A SlowFast-GTA (16 frames: 4 Slow steps) exported beside the 8-frame 2D GTA: its figures show one image
    and one tick per time step, titled with the frames each stands for; the MP4 has the 2D model's 8 frames."""
    torch.manual_seed(1)
    model = activate_blocks(create_model("demo_slowfast_r50_gta", num_classes=len(CLASSES), num_frames=16))
    config = CheckpointConfig(
        architecture=model.config.to_dict(), class_names=CLASSES, model_name="demo_slowfast_r50_gta",
        input_size=64, resize_shorter=72, provenance={"random_weights": True},
    )
    slowfast = save_checkpoint(tmp_path / "sf_gta", model, config)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "clip.mp4", frames=20, size=(72, 88), seed=3)
    out = tmp_path / "out"
    code = main(["export", str(slowfast), str(tiny_gta), str(videos), "--out", str(out), "--ig-steps", "2",
                 "--internal-batch-size", "2", "--knockout", "blocks", "--no-progress",
                 "--browser", str(tmp_path / "no-chromium-here")])
    assert code == 0
    html = (out / "clip" / "figures.html").read_text(encoding="utf-8")
    assert "slow.res3.1: spatial, slow pathway, step 2 = frames 8–11" in html      # frame 8 of 16, Slow step 2
    assert "3: f12\\u201315" in html                                             # a step's tick name (JSON-escaped –)
    assert "res3.1: spatial, frame 4" in html                                      # the 2D model: frame 4 of 8
