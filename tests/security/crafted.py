"""Crafted hostile inputs for the fuzz suite: pickles, checkpoint configs and videos.

Each builder writes one file (or folder) under a given directory and returns its
path. The pickles are written the way torch.save lays out its zip (prefix/data.pkl,
prefix/data/<key>, prefix/byteorder), with data.pkl produced by a pickler we
steer: `_Rebuild` objects reduce to torch's own `_rebuild_tensor_v2`, `_Storage`
objects become persistent ids, so any size, stride or declared element count can
be written without allocating it here. Every builder keeps its file small (< 2 MiB).
"""
from __future__ import annotations

import io
import json
import pickle
import stat
import struct
import tarfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

GiB = 1 << 30
MARKER = "gta_lens_pwned"     # a file the code-running pickles would create in the current folder


class _Storage:
    """Becomes the persistent id ('storage', FloatStorage, key, 'cpu', numel)."""

    def __init__(self, key: str, numel: int, kind=torch.FloatStorage) -> None:
        self.key, self.numel, self.kind = key, numel, kind


class _Rebuild:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""

    def __init__(self, storage: _Storage, size, stride, offset: int = 0) -> None:
        self.args = (storage, offset, tuple(size), tuple(stride), False, OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        if isinstance(obj, tuple) and obj and obj[0] == "raw-pid":   # any persistent id, verbatim
            return obj[1]
        return None


def pickle_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def torch_zip(path: Path, data_pkl: bytes, storages: dict[str, bytes], extra: dict[str, bytes] | None = None,
              byteorder: bytes = b"little", prefix: str = "archive") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", data_pkl)
        archive.writestr(f"{prefix}/byteorder", byteorder)
        for key, data in storages.items():
            archive.writestr(f"{prefix}/data/{key}", data)
        archive.writestr(f"{prefix}/version", b"3\n")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def _floats(n: int) -> bytes:
    return struct.pack(f"<{n}f", *range(n))


def _state(**tensors) -> dict:
    return {"meta": {"epoch": 1}, "state_dict": OrderedDict(tensors)}


# ---------------------------------------------------------------- pickles: tensors that are views


def expanded_view(folder: Path) -> Path:
    """One float stored, 2^28 elements declared through stride 0: 1 GiB once made contiguous."""
    s = _Storage("0", 1)
    return torch_zip(folder / "expanded_view.pth", pickle_bytes(_state(w=_Rebuild(s, [1 << 28], [0]))), {"0": _floats(1)})


def stride0_matrix(folder: Path) -> Path:
    """A row of 2^14 floats repeated 2^14 times (stride (0, 1)): 1 GiB from 64 KiB."""
    s = _Storage("0", 1 << 14)
    return torch_zip(folder / "stride0_matrix.pth",
                     pickle_bytes(_state(w=_Rebuild(s, [1 << 14, 1 << 14], [0, 1]))), {"0": bytes(4 << 14)})


def overlapping_window(folder: Path) -> Path:
    """A sliding window (stride (1, 1)) over 2^16 floats: 2^16 × 4096 overlapping elements, 1 GiB."""
    s = _Storage("0", (1 << 16) + 4096)
    return torch_zip(folder / "overlapping_window.pth",
                     pickle_bytes(_state(w=_Rebuild(s, [1 << 16, 4096], [1, 1]))), {"0": bytes(4 * ((1 << 16) + 4096))})


def shared_storage_bomb(folder: Path) -> Path:
    """1024 state entries viewing the same 1 MiB storage: 1 GiB once each gets its own copy."""
    s = _Storage("0", 1 << 18)
    tensors = {f"layer{i}.weight": _Rebuild(s, [1 << 18], [1]) for i in range(1024)}
    return torch_zip(folder / "shared_storage_bomb.pth", pickle_bytes(_state(**tensors)), {"0": bytes(1 << 20)})


def meta_shared_refs(folder: Path) -> Path:
    """meta holds one 600-byte string referenced 10^6 times (1000 lists × 1000): ~600 MB as JSON."""
    text = "x" * 600
    row = [text] * 1000
    obj = {"meta": {"notes": [row] * 1000, "epoch": 1}, "state_dict": OrderedDict(w=_Rebuild(_Storage("0", 4), [4], [1]))}
    return torch_zip(folder / "meta_shared_refs.pth", pickle_bytes(obj), {"0": _floats(4)})


def huge_declared_storage(folder: Path) -> Path:
    """A storage declared with 2^40 elements whose data holds 4 floats, viewed whole."""
    s = _Storage("0", 1 << 40)
    return torch_zip(folder / "huge_declared_storage.pth", pickle_bytes(_state(w=_Rebuild(s, [1 << 40], [1]))), {"0": _floats(4)})


def size_past_storage(folder: Path) -> Path:
    """A 4-float storage viewed as 2^20 × 2^20 elements (far past its end)."""
    s = _Storage("0", 4)
    return torch_zip(folder / "size_past_storage.pth",
                     pickle_bytes(_state(w=_Rebuild(s, [1 << 20, 1 << 20], [1 << 20, 1]))), {"0": _floats(4)})


def persistent_id_out_of_range(folder: Path) -> Path:
    """A persistent id naming storage key 999, which the archive does not hold."""
    return torch_zip(folder / "pid_out_of_range.pth",
                     pickle_bytes(_state(w=_Rebuild(_Storage("999", 4), [4], [1]))), {"0": _floats(4)})


def persistent_id_malformed(folder: Path) -> Path:
    """A persistent id that is not torch's ('storage', type, key, location, numel) tuple."""
    obj = _state(w=("raw-pid", ("storage", "../../etc/passwd")))
    return torch_zip(folder / "pid_malformed.pth", pickle_bytes(obj), {})


# ---------------------------------------------------------------- pickles: archives


def zip_bomb_member(folder: Path) -> Path:
    """A deflated storage member declaring 1 GiB of zeros (about 1 MiB on disk)."""
    path = folder / "zip_bomb_member.pth"
    data_pkl = pickle_bytes(_state(w=_Rebuild(_Storage("0", GiB // 4), [GiB // 4], [1])))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", b"little")
        with archive.open("archive/data/0", "w", force_zip64=True) as member:
            zeros = bytes(16 << 20)
            for _ in range(GiB // len(zeros)):
                member.write(zeros)
    return path


def nested_zip(folder: Path) -> Path:
    """A zip whose only member is another torch zip (data.pkl one level down)."""
    (folder / "nested").mkdir(exist_ok=True)
    inner = expanded_view(folder / "nested")
    path = folder / "nested_zip.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inner/model.pth", inner.read_bytes())
    return path


def dotdot_member(folder: Path) -> Path:
    """A torch zip whose pickle sits under '../../' (a path that climbs out of any extraction folder)."""
    return torch_zip(folder / "dotdot_member.pth", pickle_bytes(_state(w=_Rebuild(_Storage("0", 4), [4], [1]))),
                     {"0": _floats(4)}, prefix="../../archive")


def symlink_member(folder: Path) -> Path:
    """A torch zip whose storage member is a symbolic link to /etc/passwd."""
    path = folder / "symlink_member.pth"
    torch_zip(path, pickle_bytes(_state(w=_Rebuild(_Storage("0", 4), [4], [1]))), {})
    with zipfile.ZipFile(path, "a") as archive:
        link = zipfile.ZipInfo("archive/data/0")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return path


def tar_dotdot(folder: Path) -> Path:
    """A legacy (tar) torch.save layout with a member named ../../pickle."""
    path = folder / "tar_dotdot.pth"
    with tarfile.open(path, "w") as archive:
        data = pickle_bytes({"w": 1})
        info = tarfile.TarInfo("../../pickle")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------- pickles: every opcode family that can call

_PROTO2 = b"\x80\x02"
_CMD = f"touch {MARKER}".encode()


def _sbu(text: bytes) -> bytes:   # SHORT_BINUNICODE (protocol 4)
    return b"\x8c" + bytes([len(text)]) + text


OPCODE_PICKLES = {   # name -> data.pkl bytes; each would run `touch MARKER` if unpickled with pickle.load
    "reduce_global": _PROTO2 + b"cos\nsystem\n(U" + bytes([len(_CMD)]) + _CMD + b"tR.",
    "reduce_stack_global": b"\x80\x04" + _sbu(b"os") + _sbu(b"system") + b"\x93" + _sbu(_CMD) + b"\x85R.",
    "inst": _PROTO2 + b"(U" + bytes([len(_CMD)]) + _CMD + b"ios\nsystem\n.",
    "obj": _PROTO2 + b"(cos\nsystem\nU" + bytes([len(_CMD)]) + _CMD + b"o.",
    "newobj": _PROTO2 + b"csubprocess\nPopen\n(U" + bytes([len(_CMD)]) + _CMD + b"\x85t\x81.",
    "newobj_ex": b"\x80\x04" + _sbu(b"subprocess") + _sbu(b"Popen") + b"\x93" + _sbu(_CMD) + b"\x85}\x92.",
    # BUILD: an allowed object whose state names a callable global (OrderedDict + {'x': os.system}).
    "build": _PROTO2 + b"ccollections\nOrderedDict\n)R}U\x01xcos\nsystem\nsb.",
}


def opcode_pickle(folder: Path, name: str, in_zip: bool) -> Path:
    data = OPCODE_PICKLES[name]
    path = folder / f"op_{name}{'_zip' if in_zip else ''}.pth"
    if in_zip:
        return torch_zip(path, data, {})
    path.write_bytes(data)
    return path


def big_endian(folder: Path) -> Path:
    return torch_zip(folder / "big_endian.pth", pickle_bytes(_state(w=_Rebuild(_Storage("0", 4), [4], [1]))),
                     {"0": _floats(4)}, byteorder=b"big")


PICKLES = {
    "expanded_view": expanded_view,
    "stride0_matrix": stride0_matrix,
    "overlapping_window": overlapping_window,
    "shared_storage_bomb": shared_storage_bomb,
    "meta_shared_refs": meta_shared_refs,
    "huge_declared_storage": huge_declared_storage,
    "size_past_storage": size_past_storage,
    "pid_out_of_range": persistent_id_out_of_range,
    "pid_malformed": persistent_id_malformed,
    "zip_bomb_member": zip_bomb_member,
    "nested_zip": nested_zip,
    "dotdot_member": dotdot_member,
    "symlink_member": symlink_member,
    "tar_dotdot": tar_dotdot,
    "big_endian": big_endian,
    **{f"op_{name}": (lambda folder, name=name: opcode_pickle(folder, name, in_zip=False)) for name in OPCODE_PICKLES},
    **{f"op_{name}_zip": (lambda folder, name=name: opcode_pickle(folder, name, in_zip=True)) for name in OPCODE_PICKLES},
}


# ---------------------------------------------------------------- checkpoint configs


def good_checkpoint(folder: Path) -> Path:
    """A real tiny checkpoint (demo R2D-18 GTA at width 1/4, 3 classes) to derive crafted configs from."""
    from gta_core import CheckpointConfig, save_checkpoint
    from gta_core.models import create_model

    torch.manual_seed(0)
    model = create_model("demo_r2d18_gta", num_classes=3)
    config = CheckpointConfig(architecture=model.config.to_dict(), class_names=["a", "b", "c"], model_name="good",
                              input_size=64, resize_shorter=72, dataset={"name": "fixture"})
    return save_checkpoint(folder, model, config)


def _architecture(**changes):
    return lambda c: c["architecture"].update(changes)


def _set(key, value):
    return lambda c: c.update({key: value})


CONFIG_CHANGES = {   # name -> change applied to a good config.json (as a dict), or raw text for it
    "deep_nesting": '{"format": "gta-lens-checkpoint", "architecture": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "dataset_is_a_string": _set("dataset", "x"),
    "provenance_is_a_list": _set("provenance", [1, 2, 3]),
    "model_name_is_a_dict": _set("model_name", {"a": 1}),
    "gta_groups_zero": _architecture(gta_groups=0),
    "block_stage_res6": _architecture(block_stages=["res6"]),
    "width_multiplier_huge": _architecture(width_multiplier=16.0),
    "num_frames_huge": _architecture(num_frames=1_000_000_000),
    "num_classes_huge": lambda c: (c["architecture"].update(num_classes=100_000_000)),
    "input_size_huge": _architecture(input_size=10**9),
    "frames_as_string": _architecture(num_frames="8"),
    "not_utf8": b"\xff\xfe{\x00",
}


def crafted_config(folder: Path, name: str, good: Path) -> Path:
    """A copy of the `good` checkpoint folder whose config.json carries CONFIG_CHANGES[name]."""
    import shutil

    target = folder / name
    shutil.copytree(good, target)
    change = CONFIG_CHANGES[name]
    config_path = target / "config.json"
    if isinstance(change, bytes):
        config_path.write_bytes(change)
    elif isinstance(change, str):
        config_path.write_text(change)
    else:
        config = json.loads(config_path.read_text())
        change(config)
        config_path.write_text(json.dumps(config))
    return target


# ---------------------------------------------------------------- videos


def _real_mp4(path: Path) -> Path:
    from tests.app.fixtures import write_video

    return write_video(path, frames=8, size=(64, 80))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


VIDEOS = {   # name -> builder(folder) -> path; none of them is a usable video
    "empty": lambda d: _write(d / "empty.mp4", b""),
    "random_bytes": lambda d: _write(d / "random.mp4", bytes(range(256)) * 400),
    "text_renamed": lambda d: _write(d / "text.mp4", b"not a video\n" * 100),
    "pickle_renamed": lambda d: _write(d / "pickle.mp4", OPCODE_PICKLES["reduce_global"]),
    "zip_renamed": lambda d: _write(d / "zip.mp4", torch_zip(d / "zip.pth", pickle_bytes({"w": 1}), {}).read_bytes()),
    "truncated_mp4": lambda d: _truncate(_real_mp4(d / "full.mp4"), d / "truncated.mp4"),
    "header_only_mp4": lambda d: _truncate(_real_mp4(d / "full2.mp4"), d / "header_only.mp4", keep=64),
}


def _truncate(source: Path, path: Path, keep: int | None = None) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: keep if keep is not None else len(data) // 3])
    source.unlink()
    return path
