"""The `gta-lens` console script: every `python -m gta_core` command, plus `gta-lens app`.

    gta-lens app [--address 127.0.0.1] [--port 8501] [-- --videos DIR --checkpoints DIR --data DIR]

`app` starts Streamlit on app/main.py from any directory, with the server
settings of the project's .streamlit/config.toml passed as flags (Streamlit
reads that file only from the current directory) and the bundled checkpoints
and videos found through gta_core.bundle.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import tomllib
from pathlib import Path

from gta_core.__main__ import main as core_main
from gta_core.distributed import run_as_process
from gta_core.bundle import streamlit_config

MAIN_SCRIPT = Path(__file__).resolve().parent / "main.py"


def config_flags(path: Path) -> list[str]:
    """`[server] port = 1` -> ["--server.port", "1"]: Streamlit's own flags for a config.toml's settings."""
    flags = []
    for section, values in tomllib.loads(path.read_text()).items():
        for key, value in values.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            flags += [f"--{section}.{key}", text]
    return flags


def streamlit_command(address: str, port: int, app_args: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(MAIN_SCRIPT),
        *config_flags(streamlit_config()),
        "--server.address", address, "--server.port", str(port),
        "--", *app_args,
    ]


def cmd_app(args: argparse.Namespace) -> int:
    command = streamlit_command(args.address, args.port, args.app_args)
    print(f"GTA Lens on http://{args.address}:{args.port}", flush=True)
    os.execv(sys.executable, command)     # Streamlit takes over this process (Ctrl-C stops it)
    return 0                              # not reached


def register(subparsers, app_args: list[str] = ()) -> None:
    parser = subparsers.add_parser(
        "app", help="start the Streamlit app (bundled checkpoints and videos unless told otherwise)",
        description="Start the GTA Lens app. Arguments after `--` go to the app: --videos DIR, "
        "--checkpoints DIR, --data DIR (see app/settings.py).",
    )
    parser.add_argument("--address", default="127.0.0.1", help="serve on this address (0.0.0.0: beyond localhost)")
    parser.add_argument("--port", type=int, default=8501)
    parser.set_defaults(func=cmd_app, app_args=list(app_args))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    app_args: list[str] = []
    if argv[:1] == ["app"] and "--" in argv:      # what follows "--" is the app's, untouched by our parser
        cut = argv.index("--")
        argv, app_args = argv[:cut], argv[cut + 1:]
    return core_main(argv, prog="gta-lens", extra=[functools.partial(register, app_args=app_args)])


def entry_point() -> None:
    """The console script: `main`, ended as distributed.run_as_process says (a torchrun worker skips finalization)."""
    run_as_process(main)


if __name__ == "__main__":
    entry_point()
