"""Reading a foreign `torch.save` file: the one door through which GTA Lens opens a pickle.

A `.pth` is a pickle, and a pickle can run code when it is loaded. The app and
`load_checkpoint` never open one; the importers (run by a person, on a file
they chose) do, and only like this:

1. here, in the parent, without unpickling: the file's size, its first bytes,
   and for torch's zip format the archive's directory (one data.pkl one level
   down, no `..`, absolute or symbolic-link members, declared sizes bounded
   relative to the file's size, so a deflate bomb is refused unread);
2. in a child process (`unpickle_child.py`) started as `python -I` with the
   module loaded by path, its address space and output file size capped inside
   the child before torch is imported, and a timeout;
3. there with `torch.load(weights_only=True)`, or if that refuses (MMAction2
   checkpoints carry mmengine and numpy objects in `meta`) our own allow-list
   unpickler; `weights_only=False` is never used. Tensors must be dense and
   their total bytes at most `MAX_OUTPUT_RATIO` × the file's size.

The child hands back the state dict's tensors as safetensors and the readable
metadata as JSON: nothing crosses the process boundary as a pickle, and their
sizes are checked before the parent reads either.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..checkpoint import CheckpointError, inspect_safetensors

MAX_SOURCE_BYTES = 4 << 30
TIMEOUT_SECONDS = 600
# Address space of the reader: torch itself (~1 GiB of mappings), the file and a copy of its
# tensors. This machine class has 24 GB shared by several processes; --max-memory raises it.
DEFAULT_MEMORY_CAP = 4 << 30
# A torch.save file stores each storage once, uncompressed: its tensors take about its size.
MAX_OUTPUT_RATIO = 2.0
MIN_OUTPUT_ALLOWANCE = 1 << 20     # tiny files (tests, toy models) may still hand back 1 MiB
MAX_INFO_BYTES = 16 << 20          # the child's metadata budget (4 M characters) as JSON, with room
MAX_MEMBERS = 100_000
# How running into RLIMIT_AS shows in the child's last line (Python, C++ allocators, the dynamic loader).
OUT_OF_MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "can't allocate memory", "Cannot allocate memory",
                       "failed to map segment")

_CHILD = Path(__file__).resolve().with_name("unpickle_child.py")
# Caps itself (argv[1] bytes of address space, argv[2] bytes per written file), then loads
# unpickle_child.py (argv[3]) by path under a private name and runs child_main(argv[4:]).
_CHILD_BOOT = (
    "import importlib.util, resource, sys\n"
    "memory, fsize = int(sys.argv[1]), int(sys.argv[2])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (memory, memory))\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "spec = importlib.util.spec_from_file_location('_gta_unpickle_child', sys.argv[3])\n"
    "child = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = child\n"
    "spec.loader.exec_module(child)\n"
    "sys.exit(child.child_main(sys.argv[4:]))\n"
)


class SourceError(Exception):
    """A source file that cannot be imported; the message is one line naming the file."""


def output_allowance(size: int) -> int:
    """The most bytes of tensors a `size`-byte source may hand back."""
    return max(int(MAX_OUTPUT_RATIO * size), MIN_OUTPUT_ALLOWANCE)


def child_command(source: Path, scratch: str, memory_cap: int, size: int) -> list[str]:
    """The reader's command line: isolated interpreter, limits first, our module by path."""
    fsize = output_allowance(size) + MAX_INFO_BYTES
    return [sys.executable, "-I", "-c", _CHILD_BOOT, str(memory_cap), str(fsize), str(_CHILD),
            str(source), scratch, str(output_allowance(size)), f"{MAX_OUTPUT_RATIO:g}"]


def read_source(
    path: str | Path, timeout: float = TIMEOUT_SECONDS, memory_cap: int | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """The state dict of a `.pth`/`.pt` (or `.safetensors`) file and its readable metadata.

    Returns (tensors by name, info) where info holds the container's plain
    top-level values and `meta` as JSON-compatible data. memory_cap: the
    reader's address space in bytes (default DEFAULT_MEMORY_CAP).
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
    try:
        check_container(path, size)
    except SourceError as error:
        raise SourceError(f"{path}: {error}") from None
    cap = memory_cap or DEFAULT_MEMORY_CAP
    with tempfile.TemporaryDirectory(prefix="gta-import-") as scratch:
        command = child_command(path.resolve(), scratch, cap, size)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, cwd=scratch)
        except subprocess.TimeoutExpired:
            raise SourceError(f"{path}: reading took longer than {timeout:.0f} s; stopped") from None
        if done.returncode != 0:
            raise SourceError(f"{path}: {_child_failure(done, cap)}")
        return _read_output(Path(scratch), path, size)


def _child_failure(done: subprocess.CompletedProcess, cap: int) -> str:
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    reason = lines[-1][:400] if lines else f"the reader exited with code {done.returncode}"
    if done.returncode == -25:  # SIGXFSZ: RLIMIT_FSIZE
        return "the reader's output went over its size cap"
    if done.returncode < 0 or any(sign in reason for sign in OUT_OF_MEMORY_SIGNS):
        return (f"the reader ran out of its {cap >> 20} MiB memory cap or was killed ({reason}); "
                "if the file is trusted and large, raise the cap with --max-memory")
    return reason.removeprefix("SourceError: ")


def _read_output(scratch: Path, path: Path, size: int) -> tuple[dict[str, torch.Tensor], dict]:
    """The child's files, their sizes checked before either is read."""
    tensors_file, info_file = scratch / "tensors.safetensors", scratch / "info.json"
    allowance = output_allowance(size)
    for file, limit in ((tensors_file, allowance + (1 << 20)), (info_file, MAX_INFO_BYTES)):
        if not file.is_file():
            raise SourceError(f"{path}: the reader wrote no {file.name}")
        if file.stat().st_size > limit:
            raise SourceError(f"{path}: the reader's {file.name} holds {file.stat().st_size} bytes, over {limit}")
    try:
        inspect_safetensors(tensors_file, allowance + (1 << 20))
        tensors = load_file(str(tensors_file))
        info = json.loads(info_file.read_text())
    except (CheckpointError, ValueError, OSError) as error:
        raise SourceError(f"{path}: the reader's output is unreadable ({error})") from None
    return tensors, info


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        inspect_safetensors(path, MAX_SOURCE_BYTES)
        return load_file(str(path))
    except CheckpointError as error:
        raise SourceError(str(error)) from None
    except Exception as error:  # safetensors' own error types
        raise SourceError(f"{path}: not a readable safetensors file ({error})") from None


# ---------------------------------------------------------------- checks without unpickling


def check_container(path: Path, size: int) -> None:
    """Refuse what is not a pickle or a sane torch zip, reading only magic bytes and the zip directory."""
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic[:1] == b"\x80":
        return                      # a bare pickle: the child's allow-list decides
    if not magic.startswith(b"PK\x03\x04"):
        raise SourceError("not a PyTorch checkpoint (neither torch's zip format nor a pickle)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise SourceError(f"not a readable PyTorch checkpoint (its zip archive is damaged: {error})") from None
    if len(members) > MAX_MEMBERS:
        raise SourceError(f"the archive lists {len(members)} members (at most {MAX_MEMBERS})")
    for member in members:
        name = member.filename
        if name.startswith("/") or "\\" in name or ".." in name.split("/"):
            raise SourceError(f"refused: archive member {name[:80]!r} climbs out of the archive")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise SourceError(f"refused: archive member {name[:80]!r} is a symbolic link")
        if member.compress_type != zipfile.ZIP_STORED and member.file_size > 1 << 20:
            raise SourceError(f"refused: archive member {name[:80]!r} is compressed (torch.save stores tensors uncompressed)")
    pickles = [m.filename for m in members if m.filename.endswith("/data.pkl")]
    if len(pickles) != 1 or pickles[0].count("/") != 1:
        raise SourceError("not a torch.save zip archive (no single <name>/data.pkl inside)")
    declared = sum(m.file_size for m in members)
    if declared > output_allowance(size) + MAX_INFO_BYTES:
        raise SourceError(
            f"refused: the archive declares {declared} bytes uncompressed, {declared / size:.1f}× the file's "
            f"{size} bytes (at most {MAX_OUTPUT_RATIO:g}×)"
        )
