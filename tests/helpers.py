"""Small shared helpers for the core tests."""
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
