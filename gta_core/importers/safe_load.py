"""Reading a foreign `torch.save` file: the one door through which GTA Lens opens a pickle.

A `.pth` is a pickle, and a pickle can run code when it is loaded. The app and
`load_checkpoint` never open one; the importers (run by a person, on a file
they chose) do, and only like this:

1. in a child process with a memory cap and a timeout, so a hostile or huge
   file cannot take the parent down;
2. with `torch.load(weights_only=True)`, which admits tensors and plain
   containers only;
3. if that refuses (MMAction2 checkpoints carry mmengine and numpy objects in
   `meta`), with our own allow-list unpickler for torch's zip format: tensors,
   storages and plain containers are rebuilt by our code; objects of a few
   known metadata libraries (numpy, mmengine, mmcv, mmaction) become inert
   placeholders that are never imported or called; every other global (e.g.
   `os.system`) refuses the file. `weights_only=False` is never used.

The child hands back the state dict's tensors as safetensors and the readable
metadata as JSON: nothing crosses the process boundary as a pickle.
"""
from __future__ import annotations

import json
import pickle
import resource
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..checkpoint import CheckpointError, inspect_safetensors

MAX_SOURCE_BYTES = 4 << 30
TIMEOUT_SECONDS = 600
# Virtual memory of the child: the file, a copy of its tensors and torch itself.
MEMORY_BASE_BYTES = 6 << 30
STATE_KEYS = ("state_dict", "model_state", "model", "module")   # MMAction2/TSM, PySlowFast, others
INERT_MODULES = ("numpy", "mmengine", "mmcv", "mmaction", "mmdet", "mmpretrain")
STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class SourceError(Exception):
    """A source file that cannot be imported; the message is one line naming the file."""


# ---------------------------------------------------------------- the parent side


def read_source(path: str | Path, timeout: float = TIMEOUT_SECONDS) -> tuple[dict[str, torch.Tensor], dict]:
    """The state dict of a `.pth`/`.pt` (or `.safetensors`) file and its readable metadata.

    Returns (tensors by name, info) where info holds the container's plain
    top-level values and `meta` as JSON-compatible data.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise SourceError(f"{path}: empty file")
    if size > MAX_SOURCE_BYTES:
        raise SourceError(f"{path}: {size} bytes is over the {MAX_SOURCE_BYTES}-byte limit")
    if path.suffix == ".safetensors":
        return _read_safetensors(path), {"reader": "safetensors"}
    with tempfile.TemporaryDirectory(prefix="gta-import-") as scratch:
        command = [sys.executable, "-m", "gta_core.importers.safe_load", str(path.resolve()), scratch]
        cap = MEMORY_BASE_BYTES + 3 * size
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, preexec_fn=lambda: _limit_memory(cap)
            )
        except subprocess.TimeoutExpired:
            raise SourceError(f"{path}: reading took longer than {timeout:.0f} s; stopped") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else f"the reader exited with code {done.returncode}"
            if done.returncode < 0 or "MemoryError" in reason:
                reason = f"the reader ran out of its {cap >> 20} MiB memory cap or was killed ({reason})"
            raise SourceError(f"{path}: {reason.removeprefix('SourceError: ')}")
        tensors = load_file(str(Path(scratch) / "tensors.safetensors"))
        info = json.loads((Path(scratch) / "info.json").read_text())
    return tensors, info


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        inspect_safetensors(path, MAX_SOURCE_BYTES)
        return load_file(str(path))
    except CheckpointError as error:
        raise SourceError(str(error)) from None
    except Exception as error:  # safetensors' own error types
        raise SourceError(f"{path}: not a readable safetensors file ({error})") from None


def _limit_memory(cap: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


# ---------------------------------------------------------------- the child side


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
    return storage.as_strided(size, stride, offset)


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
        if not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"refused: storage of unknown type {dtype!r:.60}")
        data = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
        storage = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
        if storage.numel() != numel:
            raise pickle.UnpicklingError(f"storage {key} has {storage.numel()} elements, the pickle says {numel}")
        return storage


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # first object of a pre-1.6 torch.save file


def _allow_list_load(path: Path):
    if not zipfile.is_zipfile(path):
        # A bare pickle: the same allow-list, with no storages to read.
        with path.open("rb") as handle:
            obj = _AllowListUnpickler(handle, None, "").load()
        if obj == LEGACY_MAGIC:
            raise SourceError("a pre-1.6 torch.save file that torch.load(weights_only=True) refused")
        return obj
    with zipfile.ZipFile(path) as archive:
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
    with path.open("rb") as handle:
        magic = handle.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise SourceError("not a PyTorch checkpoint (neither torch's zip format nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "torch.load(weights_only=True)"
    except pickle.UnpicklingError:
        pass  # weights_only refused a global; the allow-list reader decides
    except Exception as error:
        raise SourceError(f"not a readable PyTorch checkpoint ({type(error).__name__}: {_first_line(error)})") from None
    try:
        return _allow_list_load(path), "allow-list unpickler"
    except SourceError:
        raise
    except pickle.UnpicklingError as error:
        raise SourceError(_first_line(error)) from None
    except Exception as error:
        raise SourceError(f"corrupt checkpoint ({type(error).__name__}: {_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def _plain(value, depth: int = 0):
    """A JSON-compatible copy of metadata: strings, numbers, lists, dicts; the rest dropped."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value[: 1 << 20] if isinstance(value, str) else value
    if depth > 8:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items() if isinstance(k, (str, int))}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value[:1000]]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return None


def split_container(obj) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, plain metadata) of what torch.load returned."""
    if not isinstance(obj, dict):
        raise SourceError(f"expected a dict at the top level, found {type(obj).__name__}")
    state, info = obj, {}
    for key in STATE_KEYS:
        if isinstance(obj.get(key), dict):
            state = obj[key]
            info = {k: _plain(v) for k, v in obj.items() if k != key and not isinstance(v, torch.Tensor)}
            info["state_key"] = key
            break
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not state:
        found = ", ".join(map(str, list(obj)[:8]))
        raise SourceError(
            f"no state dict of tensors found (top-level keys: {found}; non-tensor entries: {', '.join(map(str, not_tensors[:5]))})"
        )
    return {str(k): v for k, v in state.items()}, info


def _child_main(source: str, scratch: str) -> int:
    try:
        obj, reader = _unpickle(Path(source))
        state, info = split_container(obj)
    except SourceError as error:
        print(f"SourceError: {error}", file=sys.stderr)
        return 2
    tensors = {k: v.contiguous().clone() for k, v in state.items()}
    # safetensors refuses tensors sharing memory; cloning above gives each its own.
    save_file(tensors, str(Path(scratch) / "tensors.safetensors"))
    (Path(scratch) / "info.json").write_text(json.dumps({**info, "reader": reader}))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1], sys.argv[2]))
