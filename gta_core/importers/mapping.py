"""Renaming a foreign state dict onto ours: rules, one pure function, a loud report.

A format is a list of `Rule`s: a regular expression over the source key and
the target key it becomes. The named group `layer` is a torchvision/MMAction2
stage number (layer1..layer4), which is our res2..res5 (`{stage}` in the
target). Nothing is guessed: every source tensor must match exactly one
rule, every tensor of our model must be filled, and shapes must agree (a
1×1×1 Conv3d kernel of a 3-D non-local block becomes our 1×1 Conv2d kernel).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..checkpoint import shape_differences


class MappingError(Exception):
    """Source and target do not correspond; the message names the keys."""


@dataclass(frozen=True)
class Rule:
    pattern: str      # full-match regex over the source key
    target: str       # str.format template: named groups, plus {stage} = layer + 1

    def apply(self, key: str) -> str | None:
        match = re.fullmatch(self.pattern, key)
        if match is None:
            return None
        groups = {k: v or "" for k, v in match.groupdict().items()}  # optional groups may be absent
        if groups.get("layer"):
            groups["stage"] = int(groups["layer"]) + 1
        return self.target.format(**groups)


def _examples(keys, limit: int = 4) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def rename(source: dict[str, torch.Tensor], rules: list[Rule], what: str) -> dict[str, torch.Tensor]:
    """Apply `rules` to every key of `source`; unmatched or colliding keys are an error."""
    renamed: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmatched = []
    for key, tensor in source.items():
        targets = {t for t in (rule.apply(key) for rule in rules) if t is not None}
        if len(targets) != 1:
            unmatched.append(key)
            continue
        target = targets.pop()
        if target in renamed:
            raise MappingError(f"{what}: {origin[target]} and {key} both map to {target}")
        renamed[target], origin[target] = tensor, key
    if unmatched:
        raise MappingError(f"{what}: {len(unmatched)} source tensors match no rule: {_examples(unmatched)}")
    return renamed


def _fit(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A (O, I, 1, 1, 1) Conv3d kernel used as an (O, I, 1, 1) Conv2d kernel; otherwise unchanged."""
    if tensor.dim() == 5 and len(shape) == 4 and tensor.shape[2] == 1 and tensor.shape[:2] + tensor.shape[3:] == shape:
        return tensor.squeeze(2)
    return tensor


def fill(
    expected: dict[str, torch.Tensor], mapped: dict[str, torch.Tensor], what: str, allow_missing=lambda key: False
) -> dict[str, torch.Tensor]:
    """`mapped` checked against `expected` (a model's state dict): every key filled, shapes equal.

    Returns the state dict to load. Keys for which `allow_missing(key)` is
    true may be absent (e.g. temporal blocks when only a 2D ResNet is mapped).
    """
    fitted = {k: _fit(v, expected[k].shape) if k in expected else v for k, v in mapped.items()}
    missing, unexpected, wrong = shape_differences(
        {k: v.shape for k, v in expected.items()}, {k: v.shape for k, v in fitted.items()}
    )
    missing = [k for k in missing if not allow_missing(k)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of our tensors are not filled: {_examples(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} mapped tensors have no place in the model: {_examples(unexpected)}")
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} shape mismatches, e.g. {k}: source {tuple(fitted[k].shape)}, ours {tuple(expected[k].shape)}"
        )
    if problems:
        raise MappingError(f"{what}: " + "; ".join(problems))
    return {k: v.to(expected[k].dtype) for k, v in fitted.items()}
