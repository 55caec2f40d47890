"""Crafted .pth files against `python -m gta_core import`: each refused in one line, nothing written,
nothing run, parent and reader under 1 GiB (measured before/after in bench/bench_untrusted.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gta_core.importers import safe_load, unpickle_child
from tests.security import crafted
from tests.security.conftest import REPO, assert_refused, run_harness

# Where each is stopped, and a word of the message. Refused by the reader (or the zip check) unless noted.
EXPECTED = {
    "expanded_view": "expanded (stride-0) view",
    "stride0_matrix": "expanded (stride-0) view",
    "overlapping_window": "overlapping or gapped view",
    "shared_storage_bomb": "939.7× the file's",
    "huge_declared_storage": "does not match expected size",
    "size_past_storage": "not a readable PyTorch checkpoint",
    "pid_out_of_range": "data/999",
    "pid_malformed": "not a readable PyTorch checkpoint",
    "zip_bomb_member": "is compressed",
    "nested_zip": "no single <name>/data.pkl",
    "dotdot_member": "climbs out of the archive",
    "symlink_member": "is a symbolic link",
    "tar_dotdot": "neither torch's zip format nor a pickle",
    **{f"op_{name}{suffix}": "refused: the pickle asks for" for name in crafted.OPCODE_PICKLES for suffix in ("", "_zip")},
}
# Read, then refused by the importer's rename rules (the crafted state dict has one tensor "w"):
# what is checked is that reading them stays small.
READ_THEN_UNMAPPED = ("meta_shared_refs", "big_endian")


def reader_verdict(path: Path) -> str:
    """What the reader's checks say about `path`, run in this process (the CLI runs them in a child)."""
    try:
        safe_load.check_container(path, path.stat().st_size)
        obj, _ = unpickle_child._unpickle(path)
        state, info = unpickle_child.split_container(obj)
        size = path.stat().st_size
        unpickle_child.check_state(state, size, safe_load.output_allowance(size), "2")
    except (safe_load.SourceError, unpickle_child.SourceError) as error:
        return str(error)
    return "accepted: " + json.dumps(info)[:200] + f" ({len(json.dumps(info))} characters of metadata)"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_reader_refuses_it_in_one_line(pickles, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    verdict = reader_verdict(pickles[name])
    assert EXPECTED[name] in verdict and "\n" not in verdict, verdict
    assert not (tmp_path / crafted.MARKER).exists(), "the pickle ran code"


def test_shared_metadata_is_copied_within_a_budget(pickles):
    verdict = reader_verdict(pickles["meta_shared_refs"])
    # 10^6 references to one 600-byte string: ~600 MB as JSON before; the budget keeps 4 M characters.
    assert verdict.startswith("accepted") and int(verdict.rsplit("(", 1)[1].split()[0]) <= unpickle_child.INFO_BUDGET * 1.05


# The CLI end to end, in one harness subprocess: the parent's and the reader's peaks are measured.
# It runs in a folder holding a decoy `gta_core` package that would write a marker if imported:
# the reader must load our module by path (python -I), not whatever the current folder holds.
END_TO_END = ["expanded_view", "shared_storage_bomb", "meta_shared_refs", "zip_bomb_member", "op_reduce_global_zip"]


def test_import_refuses_in_one_line_under_1_gib_and_writes_nothing(pickles, tmp_path):
    decoy = tmp_path / "gta_core"
    (decoy / "importers").mkdir(parents=True)
    for init in (decoy / "__init__.py", decoy / "importers" / "__init__.py"):
        init.write_text(f"open({str(tmp_path / 'decoy_ran')!r}, 'w').close()\n")
    cases = [{"name": n, "argv": ["import", "mmaction2", str(pickles[n]), "--out", str(tmp_path / f"out_{n}")]}
             for n in END_TO_END]
    rows = run_harness(cases, cwd=tmp_path)
    for row in rows:
        assert_refused(row)
        if row["name"] not in READ_THEN_UNMAPPED:
            assert EXPECTED[row["name"]] in row["stderr"][0], row
    assert len(rows) == len(END_TO_END)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.json", "gta_core"], "nothing written, no decoy run"


def test_import_from_another_folder_says_what_it_says_from_the_repo_root(pickles, tmp_path):
    """`python -m gta_core import ...` run from a temporary folder: the reader still starts (it is
    loaded by path) and refuses with the very line it gives from the repo root (asserted in full)."""
    source = pickles["expanded_view"]
    done = subprocess.run(
        [sys.executable, "-m", "gta_core", "import", "mmaction2", str(source), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"error: {source}: refused: tensor 'w' is an expanded (stride-0) view (size [268435456], stride [0]); "
        "a checkpoint's tensors are dense"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_memory_cap_is_4_gib_by_default_set_in_the_child_and_can_be_raised(tmp_path, capsys):
    import torch

    command = safe_load.child_command(tmp_path / "x.pth", str(tmp_path), safe_load.DEFAULT_MEMORY_CAP, 1000)
    assert command[1] == "-I" and int(command[command.index("-c") + 2]) == 4 << 30
    legit = tmp_path / "legit.pth"
    torch.save({"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}}, legit)
    tensors, _ = safe_load.read_source(legit)
    assert torch.equal(tensors["w"], torch.arange(6.0).reshape(2, 3))
    # 256 MiB of address space is too little for torch itself: the child fails, the message says how to raise it.
    with pytest.raises(safe_load.SourceError, match=r"ran out of its 256 MiB memory cap .*--max-memory"):
        safe_load.read_source(legit, memory_cap=256 << 20)
    from gta_core.__main__ import main as cli_main

    assert cli_main(["import", "mmaction2", str(legit), "--out", str(tmp_path / "o"), "--max-memory", "0.1"]) == 2
    assert "--max-memory must be in [0.5, 1024] GiB, got 0.1" in capsys.readouterr().err


def test_a_safetensors_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    """Found by this suite: a header of 128 + 256·k bytes starts the file with 0x80, a pickle's first byte."""
    import torch
    from safetensors.torch import save_file

    from gta_core.checkpoint import CheckpointError, inspect_safetensors

    path = tmp_path / "a.safetensors"
    save_file({"w" * 68: torch.zeros(1)}, str(path))     # this name gives a 128-byte header
    assert path.read_bytes()[:1] == b"\x80"
    assert inspect_safetensors(path) == {"w" * 68: {"dtype": "F32", "shape": [1]}}
    path.write_bytes(crafted.OPCODE_PICKLES["reduce_global"])
    with pytest.raises(CheckpointError, match="renamed to .safetensors; it is refused unopened"):
        inspect_safetensors(path)
