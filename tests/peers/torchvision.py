"""torchvision's own video ResNets, as the `import torchvision` oracle, without torchvision's C ops.

PyPI's torchvision wheels for torch 2.13.0 (0.28.0) are CUDA builds: their
`_C.so` links libc10_cuda / libtorch_cuda, which torch 2.13.0+cpu lacks, so
`import torchvision` fails ("operator torchvision::nms does not exist") when
its package `__init__` registers the C ops. The model code needs none of
them. `make` installs the wheel with `--no-deps --target $(VENV)/peers/torchvision`
(off sys.path, so nothing else imports it); here an empty package object
stands in for `torchvision/__init__.py` and the pure-Python modules
(models/video/resnet.py, s3d.py and mvit.py, their weight enums and transforms) import from
that folder unchanged; the stand-in is taken out of sys.modules again after each import.
"""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import torch

from tests.helpers import calibrate_norms

SOURCE = Path(sys.prefix) / "peers" / "torchvision" / "torchvision"
VERSION = "0.28.0"
# torchvision's S3D needs a last map of at least 2×7×7 (its AvgPool3d((2, 7, 7))): 16 frames, sides of 224 or more.
CALIBRATION = {"s3d": (1, 3, 16, 224, 256)}


_IMPORTED: dict[str, types.ModuleType] = {}


def _off_path(name: str) -> types.ModuleType:
    """torchvision's module `name` from the peers folder (imported once), with sys.modules as before after it.

    The stand-in package lives in sys.modules only while the import runs: left there, it made every later
    importlib.util.find_spec("torchvision") in the process raise (transformers' and mmaction's availability
    checks: "torchvision.__spec__ is None"), failing the tests an xdist worker ran after this one.
    """
    if name in _IMPORTED:
        return _IMPORTED[name]
    assert (SOURCE / "models" / "video" / "resnet.py").is_file(), (
        f"torchvision {VERSION} is not in {SOURCE.parent}: run `make` (it installs it with "
        f"pip install --no-deps --target {SOURCE.parent} torchvision=={VERSION})"
    )
    before = {key: module for key, module in sys.modules.items() if key.partition(".")[0] == "torchvision"}
    package = types.ModuleType("torchvision")
    package.__path__, package.__version__ = [str(SOURCE)], VERSION
    sys.modules["torchvision"] = package
    try:
        # importlib: the package's __init__ rebinds `s3d` to the builder function, shadowing the module.
        _IMPORTED[name] = importlib.import_module(name)
    finally:
        for key in [key for key in sys.modules if key.partition(".")[0] == "torchvision"]:
            del sys.modules[key]
        sys.modules.update(before)
    return _IMPORTED[name]


def video_models(module: str = "resnet"):
    """torchvision.models.video.`module` (resnet, s3d, mvit) from the peers folder."""
    return _off_path(f"torchvision.models.video.{module}")


def transform_presets():
    """torchvision.transforms._presets (VideoClassification, the weight enums' transform) from the peers folder."""
    return _off_path("torchvision.transforms._presets")


def build(name: str, num_classes: int = 400):
    """torchvision's `name` (r3d_18, mc3_18, r2plus1d_18, s3d) with random weights and BatchNorm statistics."""
    torch.manual_seed(0)
    model = getattr(video_models("s3d" if name == "s3d" else "resnet"), name)(num_classes=num_classes)
    head = model.classifier[1] if name == "s3d" else model.fc
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.05)
        head.bias.copy_(torch.randn(head.bias.shape, generator=generator) * 0.1)
    clip = CALIBRATION.get(name, (2, 3, 8, 32, 48))
    calibrate_norms(model, torch.randn(clip, generator=torch.Generator().manual_seed(2)))
    return model.eval()


def build_mvit(blocks=None, size: tuple[int, int] = (16, 224), num_classes: int = 400):
    """torchvision's mvit_v2_s (`blocks` None), or its MViT class with mvit_v2_s's switches and a smaller table of
    (heads, in, out, query stride, key stride) blocks at `size` (frames, side), with random weights: its own
    initialisation (Linear std 0.02), then every LayerNorm's affine, relative-position table and the CLS token
    made random at unit-ish scale, so that the norms, the position bias and the CLS all move the logits."""
    mvit = video_models("mvit")
    torch.manual_seed(0)
    if blocks is None:
        model = mvit.mvit_v2_s(num_classes=num_classes)
    else:
        settings = [mvit.MSBlockConfig(heads, width_in, width_out, [3, 3, 3], [3, 3, 3], [1, q, q], [1, kv, kv])
                    for heads, width_in, width_out, q, kv in blocks]
        model = mvit.MViT(spatial_size=(size[1], size[1]), temporal_size=size[0], block_setting=settings,
                          residual_pool=True, residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True,
                          num_classes=num_classes)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, value in model.named_parameters():
            if isinstance(model.get_submodule(name.rpartition(".")[0]), torch.nn.LayerNorm):
                value.copy_(torch.rand(value.shape, generator=generator) + 0.5 if name.endswith("weight")
                            else torch.randn(value.shape, generator=generator) * 0.1)
            elif "rel_pos" in name or "class_token" in name:
                value.copy_(torch.randn(value.shape, generator=generator) * 0.5)
    return model.eval()
