"""The child side of `safe_load`: unpickle a `.pth` under limits, hand back safetensors + JSON.

This module runs only in the reader's child process. `safe_load.child_command`
starts `python -I` (isolated: no PYTHON* variables, no user site, not the
current folder on sys.path), sets the memory and file-size limits, then loads
this file by path under a private name: it imports nothing of `gta_core`, so a
`gta_core` folder in the current directory is never run, and torch is imported
only after the limits are in place.

What it refuses (each a one-line `SourceError: ...` on stderr, exit 2):
- globals outside the allow-list (every opcode that calls goes through `find_class`);
- tensors that are not dense: stride-0 (expanded) or overlapping views, views
  past their storage's end (a checkpoint's tensors are dense; a view is how a
  1 KB file declares a GiB);
- a state dict whose tensors, once each is written out on its own, would take
  more than `safe_load.MAX_OUTPUT_RATIO` times the file's size (shared storages included);
- metadata beyond a budget: `_plain` charges every string and container against
  one budget, so a value referenced a million times is copied until the budget
  is spent, not a million times.
"""
from __future__ import annotations

import json
import math
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import save_file

STATE_KEYS = ("state_dict", "model_state", "model", "module")   # MMAction2/TSM, PySlowFast, others
INERT_MODULES = ("numpy", "mmengine", "mmcv", "mmaction", "mmdet", "mmpretrain")
STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
INFO_BUDGET = 4 << 20        # characters of metadata handed back (MMAction2's cfg text is ~20 KB)
MAX_DIMS = 8
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first object of a pre-1.6 torch.save file


class SourceError(Exception):
    """A refusal; printed as one line."""


# ---------------------------------------------------------------- tensors must be dense


def check_dense(size, stride, offset, storage_numel: int, what: str) -> None:
    """Refuse a view that is not a dense, non-overlapping block inside its storage.

    Dense: ordered by stride, each dimension's stride is the product of the
    sizes of the dimensions below it (any permutation of a contiguous tensor,
    e.g. a saved transpose, passes). Stride 0 (expand) or a stride smaller than
    that product (a sliding window) would repeat elements.
    """
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and len(size) == len(stride)):
        raise SourceError(f"refused: {what} has a malformed size/stride")
    values = [*size, *stride, offset]
    if len(size) > MAX_DIMS or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise SourceError(f"refused: {what} has a malformed size/stride/offset")
    numel = math.prod(size)
    if numel == 0:
        return
    expected = 1
    for dim_stride, dim_size in sorted((st, s) for s, st in zip(size, stride) if s > 1):
        if dim_stride != expected:
            kind = "an expanded (stride-0)" if dim_stride == 0 else "an overlapping or gapped"
            raise SourceError(
                f"refused: {what} is {kind} view (size {list(size)}, stride {list(stride)}); "
                "a checkpoint's tensors are dense"
            )
        expected *= dim_size
    if offset + numel > storage_numel:
        raise SourceError(
            f"refused: {what} declares {numel} elements from offset {offset}, "
            f"past the end of its {storage_numel}-element storage"
        )


def check_state(state: dict[str, torch.Tensor], file_size: int, max_bytes: int, ratio: str) -> int:
    """Refuse non-dense tensors and a total past `max_bytes` (`ratio` × the file's size); returns the total bytes."""
    total = 0
    for name, tensor in state.items():
        storage_numel = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
        check_dense(tuple(tensor.shape), tuple(tensor.stride()), tensor.storage_offset(), storage_numel, f"tensor {name!r}")
        total += tensor.numel() * tensor.element_size()
    if total > max_bytes:
        raise SourceError(
            f"refused: the state dict's tensors would take {total} bytes, {total / file_size:.1f}× the file's "
            f"{file_size} bytes (at most {ratio}×, {max_bytes} bytes: storages shared between tensors are how "
            "a small file declares a large one)"
        )
    return total


# ---------------------------------------------------------------- the allow-list unpickler


class _Inert:
    """Stands in for an object of a metadata library; accepts any arguments, runs nothing."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass

    def __call__(self, *args, **kwargs) -> "_Inert":
        return _Inert()


def _rebuild_tensor(storage, offset, size, stride, *rest) -> torch.Tensor:
    # storage is a 1-D tensor of the storage's dtype (see persistent_load).
    if not isinstance(storage, torch.Tensor):
        raise SourceError("refused: a tensor rebuilt from something that is not a storage")
    check_dense(size, stride, offset, storage.numel(), "a tensor")
    return storage.as_strided(tuple(size), tuple(stride), offset)


def _rebuild_parameter(data, *rest) -> torch.Tensor:
    return data


def _encode(text: str, encoding: str = "utf-8") -> bytes:
    """Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1')."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8"):
        raise pickle.UnpicklingError("refused: _codecs.encode beyond plain bytes")
    return text.encode(encoding)


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickles torch's zip format admitting only tensors, storages and plain containers."""

    SAFE = {
        "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
        "torch._utils._rebuild_tensor": _rebuild_tensor,
        "torch._utils._rebuild_parameter": _rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
        "collections.OrderedDict": OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "torch.Size": tuple,
        "_codecs.encode": _encode,
    }

    def __init__(self, file, archive: zipfile.ZipFile | None, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full in self.SAFE:
            return self.SAFE[full]
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module.split(".")[0] in INERT_MODULES:
            return type(name, (_Inert,), {"__module__": "inert." + module})
        raise pickle.UnpicklingError(
            f"refused: the pickle asks for {full}, which is not a tensor, a storage or a plain container"
        )

    def persistent_load(self, pid):
        if self.archive is None or not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"refused: unknown persistent id {pid!r:.60}")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, torch.dtype) or not isinstance(key, str) or not isinstance(numel, int):
            raise pickle.UnpicklingError(f"refused: malformed storage id {pid!r:.60}")
        try:
            member = self.archive.getinfo(f"{self.prefix}/data/{key}")
        except KeyError:
            raise pickle.UnpicklingError(f"refused: storage {key[:40]!r} is not in the archive") from None
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if member.file_size != numel * itemsize:   # checked before anything is read
            raise pickle.UnpicklingError(
                f"storage {key[:40]} holds {member.file_size} bytes, the pickle declares {numel} × {itemsize}"
            )
        data = bytearray(self.archive.read(member))
        return torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)


def _allow_list_load(path: Path):
    if not zipfile.is_zipfile(path):
        # A bare pickle: the same allow-list, with no storages to read.
        with path.open("rb") as handle:
            obj = _AllowListUnpickler(handle, None, "").load()
        if obj == LEGACY_MAGIC:
            raise SourceError("a pre-1.6 torch.save file that torch.load(weights_only=True) refused")
        return obj
    with zipfile.ZipFile(path) as archive:
        # safe_load's parent checked the archive: one data.pkl, at depth one, names and sizes bounded.
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise SourceError("not a torch.save zip archive (no single data.pkl inside)")
        prefix = pickles[0].removesuffix("/data.pkl")
        byteorder = f"{prefix}/byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder) != b"little":
            raise SourceError("big-endian tensors are not supported")
        with archive.open(pickles[0]) as handle:
            return _AllowListUnpickler(handle, archive, prefix).load()


def _unpickle(path: Path) -> tuple[object, str]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "torch.load(weights_only=True)"
    except pickle.UnpicklingError:
        pass  # weights_only refused a global; the allow-list reader decides
    except MemoryError:
        raise
    except Exception as error:
        raise SourceError(f"not a readable PyTorch checkpoint ({type(error).__name__}: {_first_line(error)})") from None
    try:
        return _allow_list_load(path), "allow-list unpickler"
    except (SourceError, MemoryError):
        raise
    except pickle.UnpicklingError as error:
        raise SourceError(_first_line(error)) from None
    except Exception as error:
        raise SourceError(f"corrupt checkpoint ({type(error).__name__}: {_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


# ---------------------------------------------------------------- the container


def _plain(value, budget: list[int], depth: int = 0):
    """A JSON-compatible copy of metadata (strings, numbers, lists, dicts; the rest dropped),
    charged against `budget` (characters left): a value shared a million times is copied
    only until the budget is spent."""
    budget[0] -= 8 + (len(value) if isinstance(value, str) else 0)   # 8: a JSON value's punctuation
    if budget[0] < 0 or depth > 8:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        items = ((str(k), v) for k, v in value.items() if isinstance(k, (str, int)))
        return dict(_within(((k, _plain(v, budget, depth + 1)) for k, v in items), budget))
    if isinstance(value, (list, tuple)):
        return list(_within((_plain(v, budget, depth + 1) for v in value[:1000]), budget))
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return None


def _within(values, budget: list[int]):
    """`values` until the budget is spent (the rest of a container is dropped, not nulled)."""
    for value in values:
        if budget[0] < 0:
            return
        yield value


def split_container(obj) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, plain metadata) of what torch.load returned."""
    if not isinstance(obj, dict):
        raise SourceError(f"expected a dict at the top level, found {type(obj).__name__}")
    state, info = obj, {}
    for key in STATE_KEYS:
        if isinstance(obj.get(key), dict):
            state = obj[key]
            budget = [INFO_BUDGET]
            info = {str(k): _plain(v, budget) for k, v in obj.items() if k != key and not isinstance(v, torch.Tensor)}
            info["state_key"] = key
            break
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not state:
        found = ", ".join(map(str, list(obj)[:8]))
        raise SourceError(
            f"no state dict of tensors found (top-level keys: {found}; non-tensor entries: {', '.join(map(str, not_tensors[:5]))})"
        )
    return {str(k): v for k, v in state.items()}, info


def child_main(argv: list[str]) -> int:
    """argv: source, scratch folder, most bytes of tensors, that as a ratio (text). Writes
    tensors.safetensors and info.json into the scratch folder."""
    source, scratch, max_bytes, ratio = Path(argv[0]), Path(argv[1]), int(argv[2]), argv[3]
    try:
        obj, reader = _unpickle(source)
        state, info = split_container(obj)
        check_state(state, source.stat().st_size, max_bytes, ratio)
    except SourceError as error:
        print(f"SourceError: {error}", file=sys.stderr)
        return 2
    # Dense tensors only (checked above); safetensors refuses shared memory, so each gets its own copy.
    tensors = {k: v.contiguous().clone() for k, v in state.items()}
    del obj, state
    save_file(tensors, str(scratch / "tensors.safetensors"))
    (scratch / "info.json").write_text(json.dumps({**info, "reader": reader}))
    return 0
