"""Query dependence of an imported MMAction2 TSM-R50-NL (RANDOM weights, built by MMAction2 itself) on a dataset.

    python bench/probe_query_dependence_tsm.py [--data assets/sample_dataset] [--mode embedded_gaussian]
        [--limit 15] [--out DIR]

No trained TSM-R50-NL can be downloaded here, so MMAction2 1.2.0 builds one
with random weights and random BatchNorm statistics exactly as
tests/test_importers.py does (tests/peers/mmaction.py; NL θ/φ/g peaked), with
as many classes as the dataset has, in the NL `--mode` asked for; it is saved
as MMAction2 publishes and imported with our CLI, then scored with
`python -m gta_core query-dependence`. The numbers describe an untrained
network's attention, not Kinetics-trained behaviour.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.peers import mmaction as peer  # noqa: E402

FILE = "tsm_imagenet-pretrained-r50-nl-{mode}_8xb16-1x1x8-50e_kinetics400-rgb.pth"
CONFIG = ("model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', depth=50, num_segments=8, shift_div=8, "
          "non_local_cfg=dict(sub_sample=True, use_scale=False, mode='{mode}')))\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "assets" / "sample_dataset"))
    parser.add_argument("--mode", default="embedded_gaussian", choices=("embedded_gaussian", "gaussian", "dot_product"))
    parser.add_argument("--limit", type=int, default=15)
    parser.add_argument("--out", help="folder for the imported checkpoint (default: a temporary one)")
    args = parser.parse_args()
    labels = json.loads((Path(args.data) / "labels.json").read_text())
    names = sorted(labels, key=lambda name: int(labels[name]))
    folder = Path(args.out or tempfile.mkdtemp(prefix="tsm_nl_"))
    folder.mkdir(parents=True, exist_ok=True)
    model = _rebuilt_in_mode(args.mode, len(names))
    source = folder / FILE.format(mode=args.mode.replace("_", "-"))
    peer.save_as_published(model, str(source), CONFIG.format(mode=args.mode))
    (folder / "labels.txt").write_text("".join(f"{name}\n" for name in names))
    ours = folder / "ours"
    python = sys.executable
    subprocess.run([python, "-m", "gta_core", "import", "mmaction2", str(source), "--out", str(ours),
                    "--labels", str(folder / "labels.txt"), "--force"], check=True, cwd=ROOT)
    command = [python, "-m", "gta_core", "query-dependence", str(ours), "--data", args.data,
               "--limit", str(args.limit), "--threads", "1"]
    print("running:", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


def _rebuilt_in_mode(mode: str, num_classes: int):
    """tests/peers/mmaction.tsm_r50 with the NL blocks in another mmcv mode."""
    previous = peer.NL_CFG
    peer.NL_CFG = {**previous, "mode": mode}
    try:
        return peer.tsm_r50(num_classes=num_classes, frames=8, non_local=True)
    finally:
        peer.NL_CFG = previous


if __name__ == "__main__":
    sys.exit(main())
