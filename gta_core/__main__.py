"""The `python -m gta_core` command line.

Each sub-command lives beside the code it drives and exposes
`register(subparsers)`, which adds its parser and sets `func`. Adding a
command means adding its module to COMMAND_MODULES.
"""
from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence

from gta_core.distributed import run_as_process

COMMAND_MODULES = (
    "gta_core.commands",      # models, flops, info
    "gta_core.data.synth_cli",  # synth
    "gta_core.train",         # train
    "gta_core.evaluate",      # evaluate, predict
    "gta_core.comparison",    # compare
    "gta_core.export",        # export
    "gta_core.importers",     # import
    "gta_core.matrices",      # matrices
    "gta_core.query_dependence_cli",  # query-dependence
)


Register = Callable[[argparse._SubParsersAction], None]


def build_parser(prog: str = "python -m gta_core", extra: Sequence[Register] = ()) -> argparse.ArgumentParser:
    """The parser of every command; `extra` adds commands from outside gta_core (the `gta-lens app` command)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="GTA Lens: Global Temporal Attention models, checkpoints and data.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for register in extra:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m gta_core", extra: Sequence[Register] = ()) -> int:
    args = build_parser(prog, extra).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    run_as_process(main)
