"""What every subcommand shares."""

import torch

from medfuse.io import WriteError


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
