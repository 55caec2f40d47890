"""mkdocs hook: writes every command's `--help` into docs/reference/cli.md at the marker."""
from __future__ import annotations

import contextlib
import io

MARKER = "<!-- cli-help -->"


def help_texts() -> dict[str, str]:
    """{command: its --help text} for every `gta-lens` command, in the order the parser lists them."""
    from app.cli import register
    from gta_core.__main__ import build_parser

    parser = build_parser("gta-lens", extra=[register])
    commands = parser._subparsers._group_actions[0].choices   # argparse keeps sub-parsers here
    texts = {"gta-lens": parser.format_help()}
    for name, sub in commands.items():
        with contextlib.redirect_stdout(io.StringIO()):
            texts[name] = sub.format_help()
    return texts


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    sections = [f"## `{name}`\n\n```text\n{text.rstrip()}\n```\n" for name, text in help_texts().items()]
    return markdown.replace(MARKER, "\n".join(sections))
