"""The command line: ``medfuse COMMAND``. Each command lives in its own module (``export-onnx`` in
``export_onnx``) with ``add_parser(commands)`` and ``run(args)`` (which may return an exit status; None means 0);
they parse arguments, call the function a Python user would call and print what it did.
Only the chosen command's module is imported, and each imports its heavy libraries only when
it runs, so that ``--help`` is fast. Every :class:`~medfuse._shared.errors.MedfuseError` and
every failed file operation becomes one line, here, once."""

from __future__ import annotations

import argparse
import codecs
import importlib
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, cast

from medfuse import __version__
from medfuse._shared.errors import MedfuseError, error_message, one_line, printable
from medfuse._shared.threads import limit_threads

COMMANDS = {
    "fuse": "fuse two registered images (or two folders of them, or two volumes)",
    "register": "register MOVING to FIXED (rigid or affine) and resample it onto FIXED's grid",
    "train": "train a DRAN autoencoder (stage 1) on single images",
    "train-fusion": "train DRAN's fusion stage (stage 2) on registered pairs, on a stage-1 model's features",
    "evaluate": "score fused images against their sources with fusion metrics",
    "benchmark": "compare fusion methods on a dataset folder with fusion metrics",
    "batch": "fuse many volume pairs listed in a CSV manifest (resumable)",
    "report": "write an HTML page to look at a fusion: sources, fusion, weight map, metrics, volume viewer",
    "export-onnx": "write the network and a fusion rule as one ONNX file for onnxruntime",
}


ESCAPE_UNPRINTABLE = "medfuse-escape"
"""The codec error handler of the command's output (:func:`escape_unprintable`)."""


def escape_unprintable(error: UnicodeError) -> tuple[str, int]:
    """What the command prints for characters its output cannot encode: a byte of a file name that
    is not UTF-8 as ``\\xNN``, as in its messages (:func:`~medfuse._shared.errors.printable`), any
    other character as ``\\uNNNN``."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = printable(error.object[error.start : error.end])
    return text.encode("ascii", "backslashreplace").decode("ascii"), error.end


codecs.register_error(ESCAPE_UNPRINTABLE, escape_unprintable)


class Terminated(BaseException):
    """SIGTERM (a scheduler's or ``kill``'s request to stop), raised in the main thread as
    Ctrl-C raises KeyboardInterrupt, so that writes in progress tidy up the same way."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that states every option's default: appended where the text does not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or "default" in text
            or action.default is None
            or action.default is False
            or action.default == []
            or action.default == argparse.SUPPRESS
            or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
        ):
            return text
        return f"{text} (default %(default)s)"


class Parser(argparse.ArgumentParser):
    """An argument parser whose epilog may be a function, called only when help is shown (an
    epilog listing registered rules would otherwise import them on every start), and whose help
    states the defaults (:class:`DefaultsFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # argparse.ArgumentParser's arguments, passed on
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


def deferred_epilog(make: Callable[[], str]) -> str:
    """``make`` itself, to be passed as a command's ``epilog``: :class:`Parser` calls it when help
    is shown. argparse's types allow only text there, so it is typed as the text it stands for."""
    return cast(str, make)


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the full options of the command ``chosen`` (all commands if None) and
    a one-line entry for each other."""
    parser = Parser(prog="medfuse", description="Multimodal medical image fusion with DRAN.")
    parser.add_argument("--version", action="version", version=f"medfuse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        if chosen is None or name == chosen:
            importlib.import_module(f"medfuse.cli.{name.replace('-', '_')}").add_parser(commands, summary)
            command = commands.choices[name]
            if not any("--threads" in action.option_strings for action in command._actions):
                command.add_argument(
                    "--threads",
                    type=int,
                    help="CPU threads for torch, BLAS and SimpleITK (default: the libraries' "
                    "own, one per core; see benchmarks/threads_under_load.py)",
                )
            command.add_argument(
                "-q",
                "--quiet",
                action="store_true",
                help="no progress bars (they are drawn only when standard error is a terminal, so "
                "logs and pipes never get them)",
            )
        else:
            commands.add_parser(name, help=summary)
    return parser


def _chosen_command(argv: list[str]) -> str | None:
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else [str(word) for word in argv]
    for stream in (sys.stdout, sys.stderr):  # a file name whose bytes are not UTF-8 is printed, never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=ESCAPE_UNPRINTABLE)
    chosen = _chosen_command(argv)
    args = build_parser(chosen if chosen in COMMANDS else None).parse_args(argv)
    run: Callable[[argparse.Namespace], int | None] = args.run

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"medfuse {args.command}: warning: {one_line(message)}", file=file or sys.stderr)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            if args.threads is not None and args.command not in ("train", "train-fusion"):  # passed to TrainConfig
                limit_threads(args.threads)
            code = run(args)
    except (MedfuseError, OSError) as error:  # OSError: a file that could not be read or written, e.g. a full disk
        print(f"medfuse {args.command}: error: {error_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"medfuse {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"medfuse {args.command}: terminated (SIGTERM); nothing half-written was left", file=sys.stderr)
        return 143
    finally:
        if in_main_thread:  # None: a handler not set from Python, so the default
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return code or 0
