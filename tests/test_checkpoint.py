"""Checkpoints: round trip, and refusal of every bad file with its own message."""
import json
import os
import pickle
import struct

import pytest
import torch

from gta_core import CheckpointConfig, CheckpointError, create_model, load_checkpoint, save_checkpoint
from gta_core.checkpoint import WEIGHTS_NAME

from .helpers import activate_blocks, tiny_clip

CLASSES = ["moving left", "moving right", "covering"]


def make_checkpoint(folder, name="demo_r2d18_gta", **overrides):
    torch.manual_seed(0)
    model = activate_blocks(create_model(name, num_classes=len(CLASSES), **overrides)).eval()
    config = CheckpointConfig(
        architecture=model.config.to_dict(), class_names=list(CLASSES), model_name=name,
        input_size=64, resize_shorter=72, provenance={"command": "test"},
    )
    save_checkpoint(folder, model, config)
    return model


def test_save_load_gives_identical_logits(tmp_path):
    model = make_checkpoint(tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    clip = tiny_clip(batch=2)
    with torch.no_grad():
        assert torch.equal(loaded.model(clip), model(clip))
    assert loaded.config.class_names == CLASSES
    assert loaded.config.num_frames == 8
    assert not loaded.model.training
    written = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert written["num_frames"] == 8 and written["input_size"] == 64
    spec = loaded.config.clip_spec()        # what every reader of this checkpoint's clips uses
    assert (spec.num_frames, spec.input_size, spec.resize_shorter) == (8, 64, 72)
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)


def test_ddp_prefix_is_stripped(tmp_path):
    model = make_checkpoint(tmp_path / "plain")
    wrapped = torch.nn.Module()
    wrapped.module = model  # what DistributedDataParallel's state_dict looks like
    config = load_checkpoint(tmp_path / "plain").config
    save_checkpoint(tmp_path / "ddp", wrapped, config)
    clip = tiny_clip(batch=1)
    with torch.no_grad():
        assert torch.equal(load_checkpoint(tmp_path / "ddp").model(clip), model(clip))


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_unopened(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"state_dict": RunsCode(marker)})
    (tmp_path / "model.pt").write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"'\.pt' files are pickles"):
        load_checkpoint(tmp_path / "model.pt")

    # The same pickle disguised as a checkpoint folder's weights.
    make_checkpoint(tmp_path / "disguised")
    (tmp_path / "disguised" / WEIGHTS_NAME).write_bytes(payload)
    with pytest.raises(CheckpointError, match="pickle / torch.save file renamed"):
        load_checkpoint(tmp_path / "disguised")

    # A folder holding only a pickle.
    (tmp_path / "only_pickle").mkdir()
    (tmp_path / "only_pickle" / "weights.pth").write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"found weights\.pth: pickle files are never loaded"):
        load_checkpoint(tmp_path / "only_pickle")
    assert not marker.exists()


def test_truncated_safetensors_is_refused(tmp_path):
    make_checkpoint(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"not a valid safetensors file \(.*incomplete metadata, file not fully covered"):
        load_checkpoint(tmp_path / "ckpt")
    weights.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="header too small"):
        load_checkpoint(tmp_path / "ckpt")


def test_oversized_and_corrupt_headers_are_refused(tmp_path):
    make_checkpoint(tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / WEIGHTS_NAME
    weights.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(CheckpointError, match="header too large"):
        load_checkpoint(tmp_path / "ckpt")
    weights.write_bytes(struct.pack("<Q", 100) + b"{")
    with pytest.raises(CheckpointError, match="invalid header length"):
        load_checkpoint(tmp_path / "ckpt")
    weights.write_bytes(struct.pack("<Q", 4) + b"nope")
    with pytest.raises(CheckpointError, match="invalid JSON in header"):
        load_checkpoint(tmp_path / "ckpt")


def test_config_weights_mismatch_is_refused(tmp_path):
    make_checkpoint(tmp_path / "gta")
    make_checkpoint(tmp_path / "nl", name="demo_r2d18_nl")
    # GTA weights under an NL config.
    (tmp_path / "nl" / WEIGHTS_NAME).write_bytes((tmp_path / "gta" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CheckpointError, match=r"does not match the model described by .*missing \d+ tensors"):
        load_checkpoint(tmp_path / "nl")

    # Same architecture but a different number of classes: a shape mismatch.
    config = json.loads((tmp_path / "gta" / "config.json").read_text())
    config["architecture"]["num_classes"] = 4
    config["class_names"] = CLASSES + ["extra"]
    (tmp_path / "gta" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"shape mismatches \(e\.g\. backbone|shape mismatches \(e\.g\. head"):
        load_checkpoint(tmp_path / "gta")


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(class_names=["a"]), "1 class names for a model with 3 classes"),
    (lambda c: c.update(format="other"), "not a GTA Lens checkpoint config"),
    (lambda c: c.update(num_frames=16), "num_frames 16 disagrees with the architecture's 8"),
    (lambda c: c["architecture"].update(block="transformer"), "bad architecture: unknown block 'transformer'"),
    (lambda c: c.update(std=[0.2, 0.0, 0.2]), "std must be positive"),
    (lambda c: c.update(surprise=1), "unknown keys surprise"),
])
def test_bad_configs_are_refused(tmp_path, edit, message):
    make_checkpoint(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "ckpt")


def test_not_json_config_is_refused(tmp_path):
    make_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_checkpoint(tmp_path / "ckpt")
