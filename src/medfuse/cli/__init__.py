"""The command line: ``medfuse COMMAND``. Each subcommand lives in its own module with
``add_parser(commands)`` and ``run(args)`` (which may return an exit status; None means 0); they
parse arguments and call the Python API."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from medfuse.cli.common import UserError, file_error_message
from medfuse.io import one_line

SUBCOMMANDS = ("fuse", "register", "train", "evaluate", "benchmark", "batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medfuse", description="Multimodal medical image fusion with DRAN.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"medfuse.cli.{name}").add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"medfuse {args.command}: warning: {one_line(message)}", file=file or sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            code = args.run(args)
    except UserError as error:
        print(f"medfuse {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # a file that could not be written or read, e.g. a full disk
        print(f"medfuse {args.command}: error: {one_line(file_error_message(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medfuse {args.command}: interrupted", file=sys.stderr)
        return 130
    return code or 0
