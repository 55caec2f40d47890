"""torchvision 0.28.0's own r3d_18 / mc3_18 / r2plus1d_18 (tests/peers/torchvision.py) as the oracle of `import torchvision`.

Random weights and BatchNorm statistics, `torch.save(model.state_dict())` as
torchvision publishes its weights, our CLI imports the file, logits agree to
1e-4 of the largest on a non-square 8×32×48 clip. The class names and the
pipeline come from torchvision's weight enums, checked here against them.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from gta_core import load_checkpoint
from gta_core.__main__ import main as cli_main
from gta_core.importers import torchvision_video
from tests.helpers import assert_same_logits, one_thread  # noqa: F401  (one_thread: module fixture)
from tests.peers import torchvision as peer

pytestmark = pytest.mark.usefixtures("one_thread")


# mc3_18 (11 M parameters) as torchvision publishes it (a .pth state dict, read in the capped child); the
# two 30 M ones as safetensors: the same conversion without 120 MB of pickle through a child (the time).
@pytest.mark.parametrize("name, suffix", [("mc3_18", ".pth"), ("r3d_18", ".safetensors"), ("r2plus1d_18", ".safetensors")])
def test_torchvision_video_resnet_logits(name, suffix, tmp_path):
    model = peer.build(name)
    source = tmp_path / f"{name}{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), source)
    else:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, source)
    assert cli_main(["import", "torchvision", str(source), "--out", str(tmp_path / "ours"), "--frames", "8"]) == 0
    checkpoint = load_checkpoint(tmp_path / "ours")
    arch = checkpoint.config.model_config()
    assert (arch.backbone, arch.video_resnet, arch.num_frames, arch.num_classes) == ("video_resnet", name, 8, 400)
    inputs = torch.randn(2, 3, 8, 32, 48, generator=torch.Generator().manual_seed(3))     # non-square
    with torch.no_grad():
        theirs = model(inputs)
        assert_same_logits(checkpoint.model(inputs), theirs)
    config = checkpoint.config
    assert config.model_name == f"torchvision {name}" and config.class_names[:2] == ["abseiling", "air drumming"]
    assert (config.input_size, config.resize_shorter, config.mean) == (112, 128, [0.43216, 0.394666, 0.37645])


def test_class_names_and_pipeline_are_the_weight_enums():
    enums = peer.video_models()
    for weights in (enums.R3D_18_Weights.KINETICS400_V1, enums.MC3_18_Weights.KINETICS400_V1,
                    enums.R2Plus1D_18_Weights.KINETICS400_V1):
        assert torchvision_video.class_names(400) == list(weights.meta["categories"])
        transform = weights.transforms()
        assert transform.mean == torchvision_video.PREPROCESSING["mean"]
        assert transform.std == torchvision_video.PREPROCESSING["std"]
        assert list(transform.crop_size) == [torchvision_video.PREPROCESSING["input_size"]] * 2
        assert min(transform.resize_size) == torchvision_video.PREPROCESSING["resize_shorter"]
        assert f"clip_len={torchvision_video.CLIP_LEN}" in weights.meta["_docs"]
    assert torchvision_video.class_names(174) is None


def test_grad_cam_on_a_video_resnet_spreads_layer4_steps_over_frames():
    """Attributions run on the imported backbone: Grad-CAM on layer4, whose one step (r3d: 8 frames) is spread."""
    from gta_core import interpret
    from gta_core.models import VideoNet, VideoNetConfig

    torch.manual_seed(0)
    model = VideoNet(VideoNetConfig(backbone="video_resnet", video_resnet="r3d_18", num_frames=8, num_classes=3)).eval()
    cam = interpret.grad_cam(model, torch.randn(3, 8, 32, 48, generator=torch.Generator().manual_seed(1)), target=1)
    assert cam.maps.shape == (8, 2, 3)                      # layer4: 32×48 / 16, one step of 8 frames
    assert all((cam.maps[t] == cam.maps[0]).all() for t in range(8))
    assert model.time_spans("layer4.0") == ((0, 8),)
