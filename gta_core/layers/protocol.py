"""The block protocol: what an attention block declares so that the rest of gta_core needs no list of blocks.

A block (NL, SA/TA/TAPE/DNL, GTA, or one defined elsewhere, e.g. in a test)
subclasses `AttentionBlock` and registers a builder with `register_block`.
Then, with no other file changed:

* `models.VideoNet` builds it from `VideoNetConfig(block=<kind>)` (the builder);
* `gta_core.capture` asks it what to hook (`watch`) and for its record
  (`make_record`), a `BlockRecord`;
* `gta_core.views` (Query point, Temporal attention, Regions, export) reads only
  the record's methods below;
* `gta_core.comparison` reads `compare_label` / `BlockRecord.clip_matrix` (per-clip
  T'×T' statistics averaged per class) and `learned_matrices`;
* `gta_core.interpret.knockouts` lists `knockout_parts` and applies `knock_out`;
* `gta_core.query_dependence` scores `BlockRecord.query_dependence` (its parts' rows,
  read in chunks from the lazy records) and lists `AttentionBlock.query_dependence_parts`.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import ClassVar

import torch
from torch import nn

from .attention_maps import DependencePart, FrameSpans, Recorder, cast_tensor

# (part, index, branch) of a knockout; "block" (the whole block bypassed) is offered for every block.
KnockoutPart = tuple[str, "int | None", "str | None"]


class BlockRecord:
    """What one capture saw of one block. Subclasses are dataclasses with `name`, `kind` and `frame_spans`."""

    name: str
    kind: str                      # short label, upper-cased for display: "nl", "dnl", "gta", ...
    frame_spans: FrameSpans
    inserted: ClassVar[bool] = True    # as AttentionBlock.inserted

    def note(self, batch: int = 0) -> str | None:
        """A caption saying what the views' maps hold, where it is not what the paper's blocks hold."""
        return None

    @property
    def num_steps(self) -> int:
        """T': the block's time steps."""
        raise NotImplementedError

    def query_grid(self) -> tuple[int, int]:
        """(H, W): the feature grid a query cell lies on."""
        raise NotImplementedError

    def query_slices(self, step: int, y: int, x: int, batch: int = 0) -> dict:
        """What the block says about query (step, y, x), as float32 tensors, by `views.QueryView` field:
        any of spacetime (T', h, w), spatial (h, w), temporal (T',), global_rows {label: (T',)},
        plus key_grid and key_spans when the block has pooled spatial keys, and is_distribution=False
        when its rows are signed (dot-product NL)."""
        raise NotImplementedError

    def temporal_matrices(self, batch: int = 0) -> dict[str, torch.Tensor]:
        """(T', T') matrices by label (paper Fig. 5): pixel-averaged attention or mean |M̂|."""
        return {}

    def head_matrices(self) -> dict[str, torch.Tensor]:
        """Learned matrices as (G, N_h, T', T') by label (GTA)."""
        return {}

    def region_maps(self, batch: int = 0) -> tuple[torch.Tensor, list[int], torch.Tensor] | None:
        """(maps (T', K, H, W), region order strongest first, strength (K,)), or None."""
        return None

    def clip_matrix(self) -> torch.Tensor | None:
        """(B, T', T'): the input-dependent temporal attention of each clip averaged over pixels
        (what `compare` averages per class), or None when the block has none."""
        return None

    def query_dependence(self, batch: int = 0) -> dict[str, DependencePart]:
        """Part label ("NL", "SA", "TA", ...) -> its rows grouped into problems (one per query step), as
        gta_core.query_dependence scores them; the labels are `AttentionBlock.query_dependence_parts`."""
        return {}

    @property
    def swappable(self) -> bool:
        """Whether `capture(..., swap_projections=True)` changes this record (paper Fig. 7)."""
        return False

    def tensors(self) -> Iterator[torch.Tensor]:
        for value in vars(self).values():
            if isinstance(value, torch.Tensor):
                yield value
            elif hasattr(value, "tensors"):
                yield from value.tensors()

    def to(self, device=None, dtype: torch.dtype | None = None):
        """A copy with every tensor on `device` and floating tensors as `dtype` (records-dtype)."""
        changes = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            changes[field.name] = value.to(device, dtype) if hasattr(value, "tensors") else cast_tensor(value, device, dtype)
        return dataclasses.replace(self, **changes)


class AttentionBlock(nn.Module):
    """Base of every block inserted after a residual block: (B·T', C, H, W) -> the same."""

    display_name: ClassVar[str] = "block"      # as shown in the app ("NL", "DNL", ...)
    paper_reference: ClassVar[str] = ""        # where the block is defined
    # False for a layer of the backbone itself (TimeSformer's): it has no whole-block knockout
    # (nothing to resume from), and the app shows it beside a ResNet stage's block.
    inserted: ClassVar[bool] = True

    @property
    def kind(self) -> str:
        return self.display_name.lower()

    def watch(self, recorder: Recorder) -> None:
        """Attach the hooks `make_record` reads (recorder.watch_rows / watch_output / watch_input)."""
        raise NotImplementedError

    def make_record(self, recorder: Recorder, name: str, batch: int, spans: FrameSpans, swapped: bool) -> BlockRecord:
        raise NotImplementedError

    # -- DNL's swapped projections (paper Fig. 7); only blocks with SA and TA can swap
    swap_projections = False

    @property
    def can_swap_projections(self) -> bool:
        return False

    # -- compare
    @property
    def compare_label(self) -> str | None:
        """Label of the per-clip T'×T' statistic `compare` averages per class (TA, TAPE, DNL), or None."""
        return None

    def learned_matrices(self) -> dict[str, torch.Tensor]:
        """Input-independent (T', T') matrices by label (GTA's mean |M̂|)."""
        return {}

    # -- query dependence
    def query_dependence_parts(self) -> list[str]:
        """The part labels its record's `query_dependence` gives, known before a capture (compare's fixed rows)."""
        return []

    # -- knockouts
    def knockout_parts(self) -> list[KnockoutPart]:
        """Parts `knock_out` can zero besides the whole block."""
        return []

    def knock_out(self, part: str, index: int | None, branch: str | None, undo: contextlib.ExitStack) -> None:
        """Zero a part in place, pushing onto `undo` what restores it."""
        raise ValueError(f"a {self.display_name} block has no {part} part")


def bypass(module: nn.Module, undo: contextlib.ExitStack) -> None:
    """Make `module` return its (first) input until `undo` closes: a residual block knocked out."""
    handle = module.register_forward_hook(lambda mod, args, output: args[0])
    undo.callback(handle.remove)


def zero_parameter(parameter: torch.Tensor, index, undo: contextlib.ExitStack) -> None:
    """Set `parameter[index]` to zero until `undo` closes."""
    saved = parameter.detach().clone()
    with torch.no_grad():
        parameter[index] = 0

    def restore() -> None:
        with torch.no_grad():
            parameter.copy_(saved)
    undo.callback(restore)


# kind -> build(config, channels, steps): the block a `VideoNetConfig(block=kind)` inserts.
BLOCK_BUILDERS: dict[str, Callable[..., AttentionBlock]] = {}


def register_block(kind: str, build: Callable[..., AttentionBlock]) -> None:
    """Make `VideoNetConfig(block=kind)` build blocks with `build(config, channels, steps)`."""
    BLOCK_BUILDERS[kind] = build
