"""The `wavecraft` command line: argument parsing and error reporting only.

Each sub-module registers its sub-commands with `register(subparsers)` and sets `func` on them;
the functions call the library and print results. Library errors that the user can fix
(`WavecraftError`) become a one-line message and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules, in the order they appear in `wavecraft --help`.
COMMAND_MODULES: list[str] = [
    "wavecraft.cli.demo",
    "wavecraft.cli.generate",
    "wavecraft.cli.codec",
    "wavecraft.cli.data",
    "wavecraft.cli.train",
    "wavecraft.cli.export",
    "wavecraft.cli.eval",
]


def build_parser() -> argparse.ArgumentParser:
    from wavecraft import __version__

    parser = argparse.ArgumentParser(
        prog="wavecraft",
        description="Generate music and sound from text, and compress audio with a neural codec.",
    )
    parser.add_argument("--version", action="version", version=f"wavecraft {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from wavecraft.errors import WavecraftError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        result = args.func(args)
    except WavecraftError as err:
        print(f"wavecraft {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"wavecraft {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
