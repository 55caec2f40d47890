"""Small shared helpers for the core tests."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def activate_blocks(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every inserted block's closing BatchNorm a non-zero γ.

    A fresh block is the identity (zero-init γ); tests of what a block does
    need it switched on.
    """
    generator = torch.Generator().manual_seed(seed)
    for block in model.temporal_blocks().values():
        for module in block.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                with torch.no_grad():
                    module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
    return model


def calibrate_norms(module: torch.nn.Module, clip: torch.Tensor, seed: int = 0) -> torch.nn.Module:
    """Random γ and β for every BatchNorm3d, then statistics measured on `clip` (one train-mode
    forward) and scattered at random around the measured ones. Returns `module` in eval mode.

    With made-up statistics alone a deep random 3-D network's logits hardly depend on its input (the
    BatchNorm shifts swamp a signal that shrinks layer by layer), so comparing logits would compare
    constants; measured statistics keep every layer's output input-dependent and of unit scale.
    γ and β come first: changing them after would leave every later layer's statistics stale.
    The blocks' BatchNorm2d keep their γ (zero in fresh blocks) and β.
    """
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    generator = torch.Generator().manual_seed(seed)

    def uniform(like: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.rand(like.shape, generator=generator) * (high - low) + low

    with torch.no_grad():
        for norm in norms:
            norm.weight.copy_(uniform(norm.weight, 0.5, 1.5))
            norm.bias.copy_(torch.randn(norm.bias.shape, generator=generator) * 0.1)
            norm.reset_running_stats()
            norm.momentum = None               # cumulative average: one batch gives its own statistics
        module.train()                         # MMAction2's train() returns None: no chaining
        module(clip)
        module.eval()
        for norm in norms:
            norm.momentum = 0.1
            norm.running_var.mul_(uniform(norm.running_var, 0.9, 1.1))
            norm.running_mean.add_(torch.randn(norm.running_mean.shape, generator=generator) * 0.05)
    return module


def project(conv: torch.nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1×1 convolution written out: (N, C, H, W) -> (N, C', H, W)."""
    out = torch.einsum("oc,nchw->nohw", conv.weight[:, :, 0, 0], x)
    return out if conv.bias is None else out + conv.bias[None, :, None, None]


def tiny_clip(batch: int = 2, frames: int = 8, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny models: on 2 shared cores a second
    OpenMP thread spin-waits against other processes (measured 3-4x slower under load)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---------------------------------------------------------------- importers against their peers

REPO = Path(__file__).resolve().parents[1]
RELATIVE_TOLERANCE = 1e-4     # of the largest logit


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gta_core", *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def logit_gap(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """max |ours - theirs| as a fraction of the largest logit of `theirs`."""
    scale = theirs.abs().max().item()
    assert scale > 1e-3, "degenerate logits would compare trivially"
    return (ours - theirs).abs().max().item() / scale


def assert_same_logits(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    gap = logit_gap(ours, theirs)
    assert gap <= RELATIVE_TOLERANCE, f"max |ours - peer| = {gap:.3g} of the largest logit"


def assert_import_refused(args: list[str], out: Path, expected: str, capsys) -> None:
    """`python -m gta_core import ...` run in-process (the reader is still a child): exit 2, one
    `error:` line holding `expected`, no traceback, and nothing written at `out` or beside it."""
    from gta_core.__main__ import main as cli_main

    code = cli_main(["import", *args, "--out", str(out)])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, lines
    assert expected in lines[0], lines[0]
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.importing-*")), "no staging folder is left behind"
