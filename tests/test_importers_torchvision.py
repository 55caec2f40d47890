"""torchvision 0.28.0's own r3d_18 / mc3_18 / r2plus1d_18 / s3d (tests/peers/torchvision.py) as the oracle of `import torchvision`.

Random weights and BatchNorm statistics, `torch.save(model.state_dict())` as
torchvision publishes its weights, our CLI imports the file, logits agree to
1e-4 of the largest on a non-square clip (8×32×48; S3D, whose head pool needs
a 2×7×7 last map, 16×224×256). The class names and the pipeline come from
torchvision's weight enums, checked here against them.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from gta_core import interpret, load_checkpoint
from gta_core.__main__ import main as cli_main
from gta_core.importers import torchvision_video
from tests.helpers import assert_same_logits, logit_gap, one_thread  # noqa: F401  (one_thread: module fixture)
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
    # VideoClassification's exact 128×171 (aspect not kept), bilinear, its rounded centre crop; nothing assumed of it.
    assert (config.resize_to, config.interpolation, config.crop_rounding) == ([128, 171], "bilinear", "round")
    assert checkpoint.config.clip_spec().resize_to == (128, 171)
    assert config.provenance["assumed"]["pipeline"]["resize"] == "torchvision's published value"


def test_class_names_and_pipeline_are_the_weight_enums():
    resnets, s3d = peer.video_models("resnet"), peer.video_models("s3d")
    for backbone, weights in (("video_resnet", resnets.R3D_18_Weights.KINETICS400_V1),
                              ("video_resnet", resnets.MC3_18_Weights.KINETICS400_V1),
                              ("video_resnet", resnets.R2Plus1D_18_Weights.KINETICS400_V1),
                              ("s3d", s3d.S3D_Weights.KINETICS400_V1)):
        assert torchvision_video.class_names(400) == list(weights.meta["categories"])
        transform, sizes = weights.transforms(), torchvision_video.SIZES[backbone]
        assert transform.mean == torchvision_video.PREPROCESSING["mean"]
        assert transform.std == torchvision_video.PREPROCESSING["std"]
        assert list(transform.crop_size) == [sizes["input_size"]] * 2
        assert min(transform.resize_size) == sizes["resize_shorter"]
        assert list(transform.resize_size) == sizes["resize_to"]                  # (H, W), the aspect not kept
        assert transform.interpolation.value == torchvision_video.RESIZE[0]       # "bilinear"
        assert f"clip_len={torchvision_video.CLIP_LEN[backbone]}" in weights.meta["_docs"]
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


@pytest.fixture(scope="module")
def imported_s3d(one_thread, tmp_path_factory):   # noqa: F811  (one thread while it builds and imports)
    """torchvision's s3d as it publishes it (a .pth state dict), imported by our CLI at 16 frames."""
    folder = tmp_path_factory.mktemp("s3d")
    model = peer.build("s3d")
    torch.save(model.state_dict(), folder / "s3d.pth")
    assert cli_main(["import", "torchvision", str(folder / "s3d.pth"), "--out", str(folder / "ours"), "--frames", "16"]) == 0
    return model, load_checkpoint(folder / "ours")


def test_torchvision_s3d_logits(imported_s3d):
    """16×224×256: S3D's last map is 2×7×8, so its stride-1 AvgPool3d((2, 7, 7)) has two overlapping windows
    (not the global mean, which misses by far more than the tolerance: the pool is reproduced, not assumed)."""
    model, checkpoint = imported_s3d
    arch, config = checkpoint.config.model_config(), checkpoint.config
    assert (arch.backbone, arch.num_frames, arch.num_classes) == ("s3d", 16, 400)
    inputs = torch.randn(1, 3, 16, 224, 256, generator=torch.Generator().manual_seed(3))     # non-square; 1: the time
    ours = checkpoint.model
    seen = {}
    handle = ours.backbone.features.register_forward_hook(lambda module, args, out: seen.update(map=out))
    try:
        with torch.no_grad():
            theirs = model(inputs)
            logits = ours(inputs)
            assert_same_logits(logits, theirs)
            global_mean = ours.head(seen["map"].mean(dim=(2, 3, 4)))
    finally:
        handle.remove()
    assert seen["map"].shape[2:] == (2, 7, 8)
    assert logit_gap(global_mean, theirs) > 1e-2
    assert config.model_name == "torchvision s3d" and config.class_names[:2] == ["abseiling", "air drumming"]
    assert (config.input_size, config.resize_shorter, config.mean) == (224, 256, [0.43216, 0.394666, 0.37645])
    assert (config.resize_to, config.interpolation, config.crop_rounding) == ([256, 256], "bilinear", "round")
    assert "resize" not in config.provenance["assumed"]           # the S3D note it replaces
    assert config.provenance["trained_frames"] == 128
    assert interpret.order_sensitivity(arch)[0]


def test_grad_cam_and_occlusion_on_the_imported_s3d(imported_s3d):
    """Grad-CAM on `features` (one step per 8 frames, spread over them) and frame occlusion, on a 16×64×96 clip:
    its last map, 2×2×3, is under the head pool's 2×7×7, so the pool is the global mean and the maps add up
    to the logit minus the bias."""
    checkpoint = imported_s3d[1]
    model, clip = checkpoint.model, torch.randn(3, 16, 64, 96, generator=torch.Generator().manual_seed(1))
    cam = interpret.grad_cam(model, clip, target=1)
    assert cam.maps.shape == (16, 2, 3)                     # 64×96 / 32; two steps of 8 frames
    assert all((cam.maps[t] == cam.maps[8 * (t // 8)]).all() for t in range(16))
    assert not (cam.maps[0] == cam.maps[8]).all()
    assert model.time_spans("features.0") == ((0, 8), (8, 16))
    assert abs(cam.maps.sum() - (cam.score - float(model.head.bias.detach()[1]))) <= 1e-3 * max(1.0, abs(cam.score))
    occlusion = interpret.frame_occlusion(model, clip, target=1)
    assert occlusion.occluded_scores.shape == (16,) and (occlusion.drop != 0).any()


def test_resize_to_on_the_command_line(tmp_path):
    """--resize-to H W replaces the enum's 128×171; the provenance keeps the command and says it was overridden."""
    source = tmp_path / "mc3_18.safetensors"
    save_file({k: v.contiguous() for k, v in peer.build("mc3_18").state_dict().items()}, source)
    out = tmp_path / "ours"
    assert cli_main(["import", "torchvision", str(source), "--out", str(out), "--frames", "8",
                     "--resize-to", "144", "192"]) == 0
    config = load_checkpoint(out).config
    assert (config.resize_to, config.crop_rounding, config.input_size) == ([144, 192], "round", 112)
    assert config.clip_spec().resize_to == (144, 192)
    assert "--resize-to 144 192" in config.provenance["command"]
    assert config.provenance["assumed"]["pipeline"]["resize"].endswith("overridden on the command line: resize_to=[144, 192]")
