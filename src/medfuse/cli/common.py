"""What every subcommand shares."""

from pathlib import Path

import torch

from medfuse.fusion import NotEnoughMemoryError
from medfuse.io import IMAGE_SUFFIXES, WriteError, check_folder_writable


class UserError(Exception):
    """A mistake in the command line or its inputs: reported in one line, exit status 2."""


def torch_device(name: str) -> torch.device:
    """A usable torch device from ``--device``, or a UserError saying why not."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a torch device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    return device


def file_error_message(error: OSError) -> str:
    """One line for a failed file operation: the file and the system's reason."""
    if isinstance(error, WriteError) or not error.strerror:
        return str(error)
    return f"{error.filename}: {error.strerror}" if error.filename else error.strerror


def memory_error(error: NotEnoughMemoryError, batch_size: int | None) -> UserError:
    """The one line for work that does not fit, with a hint when --batch-size chose the batch."""
    return UserError(f"{error}{'; try a smaller --batch-size' if batch_size else ''}")


def check_image_output(out: Path, inputs: tuple[Path, ...]) -> None:
    """UserError unless ``out`` can take a 2-D image: not an input, not a folder, a known
    format, in a folder that exists and takes files."""
    if any(out.resolve() == path.resolve() for path in inputs):
        raise UserError(f"output {out} is one of the inputs; choose another path")
    if out.is_dir():
        raise UserError(f"output {out} is a folder; give a file name (folders are for folder mode)")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{out}: unknown output format; use one of {', '.join(IMAGE_SUFFIXES)}")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    check_folder_writable(out)
