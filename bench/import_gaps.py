"""Measured gaps of the new importers against their peers (needs the dev venv: mmaction2, transformers,
and torchvision in .venv/peers, see the Makefile):

    .venv/bin/python bench/import_gaps.py

Prints max |ours - peer| / max |peer| of the logits (the tests bound it by 1e-4) and TimeSformer's and MViT's
attention gaps (MViT: torchvision's softmax recomputed from its own modules, every block and head).
"""
import logging
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository root
from einops import rearrange
from gta_core import capture, load_checkpoint
from gta_core.importers import import_checkpoint
from tests.helpers import logit_gap
from tests.peers import mmaction as peer
from tests import test_importers_timesformer as tt
from tests.test_importers_slowfast import config_text
from mmengine.logging import MMLogger
from safetensors.torch import save_file
from tests.peers import torchvision as tvp
torch.set_num_threads(1)
# mmengine logs every parameter's init at INFO (thousands of lines per model): only the gaps are printed.
MMLogger.get_current_instance().setLevel(logging.WARNING)
out = tempfile.mkdtemp()
g = lambda s: torch.randn(*s, generator=torch.Generator().manual_seed(4))
for recipe, sw in peer.SLOWFAST_RECIPES.items():
    m = peer.slowfast_r50(num_classes=400, base_channels=16, **sw)
    src = Path(out) / f"slowfast_r50_8xb8-{recipe}-256e_kinetics400-rgb.pth"
    peer.save_as_published(m, str(src), config_text(**sw))
    ck = load_checkpoint(import_checkpoint("mmaction2", src, Path(out) / recipe))
    x = g((2, 3, 32, 96, 128))
    with torch.no_grad(): print(f"SlowFast {recipe}: gap {logit_gap(ck.model(x), peer.logits_3d(m, x)):.2e}")
m = peer.slowonly_r50(num_classes=9, base_channels=16)
src = Path(out) / "slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.pth"; peer.save_as_published(m, str(src), "")
ck = load_checkpoint(import_checkpoint("mmaction2", src, Path(out) / "so")); x = g((2, 3, 8, 96, 128))
with torch.no_grad(): print(f"SlowOnly 8x8x1: gap {logit_gap(ck.model(x), peer.logits_3d(m, x)):.2e}")
hf = tt.hf_timesformer(); hf.save_pretrained(Path(out) / "hf")
ck = load_checkpoint(import_checkpoint("hf-timesformer", Path(out) / "hf", Path(out) / "tsf"))
x = g((2, 3, 4, 48, 32)); logits, spatial, temporal = tt.hf_attentions(hf, x)
cap = capture(ck.model, x)
print(f"TimeSformer 48x32: logit gap {logit_gap(cap.logits, logits):.2e}")
for i, (s, t) in enumerate(zip(spatial, temporal)):
    r = cap.records[f"layer.{i}"]
    sa = rearrange(s, "(b t) n q k -> b t n q k", t=4).mean(2)[:, :, 1:, 1:]
    ta = rearrange(t, "(b y x) n q k -> b y x n q k", y=6, x=4).mean(3)
    print(f"  layer.{i}: max |SA - HF| {(r.spatial.weights - sa).abs().max():.2e}, max |TA - HF| {(r.temporal.weights - ta).abs().max():.2e}")
for name in ("mc3_18", "r3d_18", "r2plus1d_18"):
    m = tvp.build(name); src = Path(out) / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, src)
    ck = load_checkpoint(import_checkpoint("torchvision", src, Path(out) / name, frames=8)); x = g((2, 3, 8, 32, 48))
    with torch.no_grad(): print(f"torchvision {name}: gap {logit_gap(ck.model(x), m(x)):.2e}")
m = tvp.build("s3d"); src = Path(out) / "s3d.pth"; torch.save(m.state_dict(), src)   # its head pool needs 2×7×7
ck = load_checkpoint(import_checkpoint("torchvision", src, Path(out) / "s3d", frames=16)); x = g((1, 3, 16, 224, 256))
with torch.no_grad(): print(f"torchvision s3d 16x224x256: gap {logit_gap(ck.model(x), m(x)):.2e}")
from tests.test_importers_mvit import their_attention
m = tvp.build_mvit(); src = Path(out) / "mvit_v2_s.pth"; torch.save(m.state_dict(), src)   # runs only at 16×224²
ck = load_checkpoint(import_checkpoint("torchvision", src, Path(out) / "mvit")); x = g((1, 3, 16, 224, 224))
cap, theirs = capture(ck.model, x), their_attention(m, x)
with torch.no_grad(): print(f"torchvision mvit_v2_s 16x224x224: gap {logit_gap(cap.logits, m(x)):.2e}")
gaps = {n: (cap.records[n].rows.weights - w.flatten(0, 1)).abs().max().item() for n, w in theirs.items()}
print(f"  attention rows of all 16 blocks and heads: max |ours - torchvision| {max(gaps.values()):.2e}")
