"""Knockouts: zero a GTA head, group, region, branch or a whole block and watch the class scores.

Each block lists the parts it can zero and zeroes them itself (`AttentionBlock.knockout_parts` /
`knock_out` in gta_core/layers); this module only adds the whole-block bypass and the scoring.

Part of `gta_core.interpret` (see its docstring: private copies, logits as scores).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..layers.protocol import bypass
from ..models import VideoNet
from . import _as_batch, _logits, _numpy, _target, private_copy


KNOCKOUT_PARTS = ("block", "spatial", "temporal", "pixel", "region_branch", "head", "group", "region")


@dataclass(frozen=True)
class Component:
    """A part of an inserted block that can be zeroed at inference.

    part:
      block          the whole block (its output becomes its input)
      spatial        SA inside DNL / GTA (bypassed)
      temporal       TA / TAPE / GTA inside the block (bypassed)
      pixel          Pixel GTA (W_P^O zeroed)
      region_branch  Region GTA (W_R^O zeroed)
      head           GTA head k of `branch` ("pixel" or "region"): M̂[:, k] zeroed, so head k's
                     output Σ_g M̂_g^k V_g is zero
      group          GTA channel group g of `branch`: M̂[g, :] zeroed, so V_g reaches no head
      region         Region GTA region k: its features after M̂_R are zeroed before G_Rᵀ maps them back
    """

    block: str                  # e.g. "res3.1"
    part: str                   # one of KNOCKOUT_PARTS
    index: int | None = None    # head, group or region index
    branch: str | None = None   # "pixel" or "region" for heads and groups

    def __post_init__(self) -> None:
        if self.part not in KNOCKOUT_PARTS:
            raise ValueError(f"unknown component part {self.part!r}; choose one of {KNOCKOUT_PARTS}")

    @property
    def label(self) -> str:
        if self.part in ("head", "group"):
            return f"{self.block} {self.branch} {self.part} {self.index}"
        if self.part == "region":
            return f"{self.block} region {self.index}"
        return f"{self.block} {self.part.replace('_branch', ' GTA')}"


def knockout_components(model: VideoNet) -> list[Component]:
    """Every component `knockout` can zero, block by block (each block lists its own parts)."""
    components = []
    for name, block in model.temporal_blocks().items():
        if not block.inserted:
            # A layer of the network itself (TimeSformer's): no residual stage to resume from, no block to
            # bypass alone; knocking one out is not the paper's "remove an inserted block" question.
            continue
        components.append(Component(name, "block"))
        components += [Component(name, part, index, branch) for part, index, branch in block.knockout_parts()]
    return components


@contextlib.contextmanager
def knocked_out(model: VideoNet, component: Component) -> Iterator[None]:
    """Within the block, `component` of `model` is zeroed; on exit the model is as before.

    It edits `model` itself (a parameter slice set to zero, or a forward hook;
    the block's own `knock_out` says which) and restores it on exit, also when
    the body raises: call it on a private copy (`private_copy`) or hold a lock
    around a shared model.
    """
    blocks = model.temporal_blocks()
    if component.block not in blocks:
        raise KeyError(f"no block {component.block!r}; the model has {', '.join(blocks) or 'none'}")
    block = blocks[component.block]
    with contextlib.ExitStack() as undo:
        try:
            if component.part == "block":
                bypass(block, undo)
            else:
                block.knock_out(component.part, component.index, component.branch, undo)
        except ValueError as error:
            raise ValueError(f"{component.label}: {error}") from None
        yield


@dataclass
class KnockoutResult:
    """Class scores with one component zeroed, against the intact model."""

    component: Component
    target: int                     # the intact model's top-1 unless chosen
    logits: np.ndarray              # (num_classes,) intact
    knocked_logits: np.ndarray      # (num_classes,) with the component zeroed

    @property
    def delta(self) -> np.ndarray:
        """(num_classes,) logit change."""
        return self.knocked_logits - self.logits

    @property
    def score_change(self) -> float:
        return float(self.delta[self.target])

    @property
    def probability_change(self) -> float:
        before = torch.from_numpy(self.logits).softmax(-1)[self.target]
        after = torch.from_numpy(self.knocked_logits).softmax(-1)[self.target]
        return float(after - before)

    @property
    def top1_after(self) -> int:
        return int(self.knocked_logits.argmax())


def knockout(
    model: VideoNet,
    clip: torch.Tensor,
    components: Component | Sequence[Component] | None = None,
    target: int | None = None,
) -> list[KnockoutResult]:
    """Zero each component in turn (None: every one of `knockout_components`) and rescore the clip.

    One private copy serves all components; each knockout is undone before
    the next, so results are single knockouts, never cumulative. A knockout
    changes only its block and what follows, so the features entering each
    block are computed once and every knockout runs from there
    (`VideoNet.forward_from_block`).
    """
    private = private_copy(model)
    batch = _as_batch(private, clip)
    if components is None:
        components = knockout_components(private)
    elif isinstance(components, Component):
        components = [components]
    blocks = private.temporal_blocks()
    inputs: dict[str, torch.Tensor] = {}
    handles = [
        blocks[name].register_forward_pre_hook(lambda module, args, name=name: inputs.setdefault(name, args[0]))
        for name in {c.block for c in components} if name in blocks
    ]
    try:
        logits = _logits(private, batch)[0]
    finally:
        for handle in handles:
            handle.remove()
    target = _target(logits[None], target)
    with torch.inference_mode():
        context = private.resume_context(batch)
    results = []
    for component in components:
        with knocked_out(private, component), torch.inference_mode():
            knocked = private.forward_from_block(component.block, inputs[component.block], context).float()[0]
        results.append(KnockoutResult(component, target, _numpy(logits), _numpy(knocked)))
    return results
