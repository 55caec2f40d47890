"""End to end: MMAction2's `inference_recognizer` on a video file against `python -m gta_core predict`.

MMAction2 1.2.0 builds an I3D-R50-NL (base_channels 16, random weights and
BatchNorm statistics), saves it as it publishes (meta['cfg'] = the config's
pretty_text), and runs its own test pipeline on Big Buck Bunny: 2 dense clips
of 16 frames 2 apart, Resize(-1, 64), ThreeCrop(64), 6 views, average_clips
'prob'. We import the file with no flags (the pipeline comes from the config
text) and predict with the CLI. Each view's logits must equal MMAction2's
(read by a hook on its classifier) to 1e-4 of the largest, and the averaged
scores its pred_score.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import one_thread, run_cli  # noqa: F401  (fixture)
from tests.peers import mmaction as peer

pytestmark = pytest.mark.usefixtures("one_thread")
BUNNY = Path(__file__).resolve().parents[1] / "assets" / "real" / "big_buck_bunny_720p.mp4"
TEST_PIPELINE = [
    dict(type="DecordInit"),
    dict(type="SampleFrames", clip_len=16, frame_interval=2, num_clips=2, test_mode=True),
    dict(type="DecordDecode"),
    dict(type="Resize", scale=(-1, 64)),
    dict(type="ThreeCrop", crop_size=64),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs"),
]


def test_inference_recognizer_equals_our_predict(tmp_path):
    from mmengine.config import Config

    model_config = peer.i3d_r50_config(num_classes=10, non_local=True, base_channels=16)
    config = Config(dict(model=model_config, test_pipeline=TEST_PIPELINE, default_scope="mmaction"))
    model = peer.i3d_r50(10, True, config=model_config)
    peer.pipeline([])                       # registers the transforms inference_recognizer's Compose builds
    model.cfg = config
    source = tmp_path / "i3d_r50_nl_16x2x2_tiny.pth"
    peer.save_as_published(model, str(source), config.pretty_text)

    from mmaction.apis import inference_recognizer

    seen = []
    hook = model.cls_head.fc_cls.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
    with torch.no_grad():
        sample = inference_recognizer(model, str(BUNNY))
    hook.remove()
    theirs = torch.cat(seen)                                          # (6 views, 10): crops outer, clips inner

    done = run_cli("import", "mmaction2", str(source), "--out", str(tmp_path / "ours"))
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert {k: saved[k] for k in ("sampling", "num_frames", "frame_interval", "num_clips", "crop", "input_size",
                                  "resize_shorter", "interpolation", "average_views")} == {
        "sampling": "dense", "num_frames": 16, "frame_interval": 2, "num_clips": 2, "crop": "three",
        "input_size": 64, "resize_shorter": 64, "interpolation": "bilinear", "average_views": "prob"}
    assert saved["provenance"]["assumed"]["pipeline"]["sampling"] == "read from the config text's test_pipeline (SampleFrames)"

    done = run_cli("predict", str(tmp_path / "ours"), str(BUNNY), "--json", "--logits", "--decoder", "decord")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    ours = torch.tensor(result["view_logits"])
    assert [v["name"] for v in result["views"]] == [f"clip {c}, {crop} crop" for crop in ("left", "right", "centre")
                                                     for c in (0, 1)]
    assert ours.shape == theirs.shape == (6, 10)
    scale = theirs.abs().max().item()
    assert (theirs[0] - theirs[4]).abs().max().item() > 0.05 * scale     # the views differ: averaging matters
    gap = (ours - theirs).abs().max().item() / scale
    print(f"largest logit {scale:.3f}, gap {gap:.2e} of it")
    assert gap < 1e-4, gap
    np.testing.assert_allclose(result["scores"], sample.pred_score.numpy(), atol=1e-5)
    assert result["predictions"][0]["index"] == int(sample.pred_score.argmax())
