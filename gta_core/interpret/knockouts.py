"""Knockouts: zero a GTA head, group, region, branch or a whole block and watch the class scores.

Part of `gta_core.interpret` (see its docstring: private copies, logits as scores).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from torch import nn

from ..layers import DecoupledAttention, GlobalTemporalAttention, GTABlock, NonLocalBlock
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


def _matrix(gta: GlobalTemporalAttention, branch: str) -> torch.Tensor | None:
    if branch not in ("pixel", "region"):
        raise ValueError(f"branch must be 'pixel' or 'region', got {branch!r}")
    return gta.pixel_matrix if branch == "pixel" else gta.region_matrix


def _heads(matrix: torch.Tensor) -> int:
    """Heads of a GTA matrix: G for CCMH (G, G, T, T) and per-group (G, T, T), 1 for one (T, T)."""
    return 1 if matrix.dim() == 2 else matrix.shape[0] if matrix.dim() == 3 else matrix.shape[1]


def knockout_components(model: VideoNet) -> list[Component]:
    """Every component `knockout` can zero, block by block (none on TimeSformer, see below)."""
    components = []
    if model.config.backbone == "timesformer":
        # Its layers are the whole network (no residual stage to resume from, no block to bypass
        # alone): knocking one out is not the paper's "remove an inserted block" question.
        return components
    for name, block in model.temporal_blocks().items():
        components.append(Component(name, "block"))
        if isinstance(block, (DecoupledAttention, GTABlock)):
            if block.spatial is not None and block.temporal is not None:
                components += [Component(name, "spatial"), Component(name, "temporal")]
        if not isinstance(block, GTABlock):
            continue
        gta = block.temporal
        for branch, part in (("pixel", "pixel"), ("region", "region_branch")):
            matrix = _matrix(gta, branch)
            if matrix is None:
                continue
            components.append(Component(name, part))
            components += [Component(name, "head", k, branch) for k in range(_heads(matrix))]
            if matrix.dim() == 4:  # with CCMH, groups and heads are different axes
                components += [Component(name, "group", g, branch) for g in range(matrix.shape[0])]
        if gta.region_assign is not None:
            components += [Component(name, "region", k) for k in range(gta.num_regions)]
    return components


def _bypass(module: nn.Module) -> torch.utils.hooks.RemovableHandle:
    """A forward hook that makes `module` return its (first) input: a residual block knocked out."""
    return module.register_forward_hook(lambda mod, args, output: args[0])


@contextlib.contextmanager
def knocked_out(model: VideoNet, component: Component) -> Iterator[None]:
    """Within the block, `component` of `model` is zeroed; on exit the model is as before.

    It edits `model` itself (a parameter slice set to zero, or a forward hook)
    and restores it on exit, also when the body raises: call it on a private
    copy (`private_copy`) or hold a lock around a shared model.
    """
    blocks = model.temporal_blocks()
    if component.block not in blocks:
        raise KeyError(f"no block {component.block!r}; the model has {', '.join(blocks) or 'none'}")
    block = blocks[component.block]
    handles: list[torch.utils.hooks.RemovableHandle] = []
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []     # (parameter, its original values)

    def zero(parameter: torch.Tensor, index) -> None:
        saved.append((parameter, parameter.detach().clone()))
        with torch.no_grad():
            parameter[index] = 0

    part = component.part
    try:
        if part == "block":
            handles.append(_bypass(block))
        elif part in ("spatial", "temporal"):
            sub = getattr(block, part, None)
            if sub is None or isinstance(block, NonLocalBlock):
                raise ValueError(f"{component.block} has no {part} part")
            handles.append(_bypass(sub))
        else:
            if not isinstance(block, GTABlock):
                raise ValueError(f"{component.label}: {component.block} is not a GTA block")
            gta = block.temporal
            if part in ("pixel", "region_branch"):
                out = gta.pixel_out if part == "pixel" else gta.region_out
                if out is None:
                    raise ValueError(f"{component.block} has no {part.replace('_branch', '')} GTA")
                zero(out.weight, slice(None))
            elif part in ("head", "group"):
                matrix = _matrix(gta, component.branch)
                if matrix is None:
                    raise ValueError(f"{component.block} has no {component.branch} GTA")
                count = _heads(matrix) if part == "head" else (matrix.shape[0] if matrix.dim() > 2 else 1)
                if not 0 <= component.index < count:
                    raise ValueError(f"{component.label}: index out of 0..{count - 1}")
                if matrix.dim() == 2:
                    zero(matrix, slice(None))
                elif matrix.dim() == 3 or part == "group":
                    zero(matrix, component.index)                     # (G, ...) row g
                else:
                    zero(matrix, (slice(None), component.index))      # (G, N_h, T, T): head k of every group
            elif part == "region":
                if gta.region_assign is None:
                    raise ValueError(f"{component.block} has no Region GTA")
                if not 0 <= component.index < gta.num_regions:
                    raise ValueError(f"{component.label}: index out of 0..{gta.num_regions - 1}")
                regions, index = gta.num_regions, component.index

                def drop_region(module, args, output):
                    # output: (B·K, T, C_R), regions innermost in the batch axis
                    mask = torch.ones(regions, 1, 1, dtype=output.dtype, device=output.device)
                    mask[index] = 0
                    return (rearrange(output, "(b k) t c -> b k t c", k=regions) * mask).flatten(0, 1)

                handles.append(gta.mixed_regions.register_forward_hook(drop_region))
        yield
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for parameter, values in reversed(saved):
                parameter.copy_(values)


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
