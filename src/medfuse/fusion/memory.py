"""How much memory a fusion takes, and how many pairs fit in one network call.

Planned before any work: a fusion that would not fit is refused with the numbers
(:class:`~medfuse._shared.errors.NotEnoughMemoryError`), never started and killed midway.
torch is imported only to ask a device for its free memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from medfuse._shared.errors import InputError, NotEnoughMemoryError

if TYPE_CHECKING:
    import torch


BYTES_PER_PIXEL = 4096
"""Peak memory of fusing one pixel of one image pair: the float32 network activations of
both encoders (and the decoder) and the nuclear norms. Measured on the CPU: 3.3 to 3.5 kB per
pixel for 512 x 512 to 1024 x 1024 pairs and batches of 4 (``benchmarks/fusion_memory.py``)."""


FUSION_OVERHEAD = 128 * 2**20
"""Memory a fusion takes whatever its size (allocator and library workspaces): measured 100 MB
on the CPU for a 256 x 256 pair over the per-pixel share."""


MEMORY_SHARE = 0.8
"""The share of the free memory that one fusion may plan to use."""


VOLUME_BYTES_PER_VOXEL = 8
"""Host memory :func:`medfuse.fusion.volumes.fuse_volumes` holds per voxel besides the slices in
the network: the fused slices and the fused volume returned (float32 each). A 256^3 volume: 128 MB."""


CPU_BATCH_SIZE = 1
"""Slices per network call on the CPU: larger batches measured slower there
(``benchmarks/results/volume_speed_cpu.txt``)."""


MAX_CUDA_BATCH_SIZE = 64
"""Most slices per network call on CUDA; fewer when the free GPU memory holds fewer."""


def _in_units(count: int) -> str:
    return f"{count / 2**30:.1f} GB" if count >= 2**30 else f"{count / 2**20:.0f} MB"


def _address_space_left() -> int | None:
    """Bytes of address space this process may still map under ``RLIMIT_AS`` (``ulimit -v``, as
    batch schedulers set): the soft limit less the current virtual size; None without a limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (ImportError, OSError, ValueError):
        return None
    return None


def _free_cpu_memory() -> int | None:
    """Bytes of RAM this process can still take (Linux: MemAvailable, bounded by a cgroup v2
    memory limit and by the address space ``RLIMIT_AS`` leaves); None where the system does not
    say."""
    available = _ram_available()
    room = _address_space_left()
    if room is not None:
        available = room if available is None else min(available, room)
    return available


def _ram_available() -> int | None:
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return available
    if limit != "max":
        room = int(limit) - used
        available = room if available is None else min(available, room)
    return available


def free_memory(device: str | torch.device) -> int | None:
    """Bytes free on ``device``: GPU memory on CUDA (the driver's free memory plus what torch
    holds unused), RAM otherwise; None where it cannot be told. The CPU's needs no torch (a
    reader asks it before decoding)."""
    if str(device) == "cpu":
        return _free_cpu_memory()
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "cpu":
        return _free_cpu_memory()
    return None


def fusion_memory(height: int, width: int, count: int = 1) -> int:
    """Bytes that fusing ``count`` pairs of ``height`` x ``width`` images at once needs at its
    peak: ``BYTES_PER_PIXEL * count * height * width + FUSION_OVERHEAD`` (about 0.4 GB for one
    256 x 256 pair, 1.1 GB for 512 x 512, 4.1 GB for 1024 x 1024)."""
    return BYTES_PER_PIXEL * count * height * width + FUSION_OVERHEAD


def check_memory(height: int, width: int, count: int, device: str | torch.device, host_bytes: int = 0) -> None:
    """Raise :class:`NotEnoughMemoryError`, with the numbers, if ``count`` pairs of
    ``height`` x ``width`` would not fit in ``MEMORY_SHARE`` of the free memory of ``device``, or
    ``host_bytes`` more (arrays the work holds on the host besides the network's: a volume's
    result) would not fit in the free RAM (with the pairs, on the CPU)."""
    on_cpu = str(device) == "cpu" or getattr(device, "type", None) == "cpu"
    free = free_memory(device)
    needed = fusion_memory(height, width, count) + (host_bytes if on_cpu else 0)
    if free is not None and needed > MEMORY_SHARE * free:
        what = f"{count} pairs" if count > 1 else "a pair"
        arrays = f" and {_in_units(host_bytes)} for the volume's arrays" if on_cpu and host_bytes else ""
        raise NotEnoughMemoryError(
            f"fusing {what} of {width} x {height} pixels{arrays} needs about {_in_units(needed)} on {device}, "
            f"but only {_in_units(free)} is free, of which medfuse plans to use {MEMORY_SHARE:.0%} (about "
            f"{BYTES_PER_PIXEL // 1024} kB per pixel of each pair, plus {FUSION_OVERHEAD >> 20} MB)"
        )
    if not on_cpu and host_bytes:
        check_host_memory(host_bytes, "holding the volume's arrays")


def check_host_memory(needed: int, what: str) -> None:
    """Raise :class:`NotEnoughMemoryError` if ``needed`` bytes (for ``what``) would not fit in
    ``MEMORY_SHARE`` of the free RAM."""
    free = free_memory("cpu")
    if free is not None and needed > MEMORY_SHARE * free:
        raise NotEnoughMemoryError(
            f"{what} needs about {_in_units(needed)}, but only {_in_units(free)} is free, "
            f"of which medfuse plans to use {MEMORY_SHARE:.0%}"
        )


def default_batch_size(device: str | torch.device, height: int, width: int, host_bytes: int = 0) -> int:
    """Pairs (or slices) of ``height`` x ``width`` per network call on ``device``: 1 on the CPU;
    on CUDA as many as fit in ``MEMORY_SHARE`` of the free GPU memory, at most
    ``MAX_CUDA_BATCH_SIZE``. Raises :class:`NotEnoughMemoryError` if not even one fits (with
    ``host_bytes`` more on the host: :func:`check_memory`)."""
    import torch

    device = torch.device(device)
    check_memory(height, width, 1, device, host_bytes)
    if device.type != "cuda":
        return CPU_BATCH_SIZE
    free = free_memory(device)
    assert free is not None  # a CUDA device's is always known
    fitting = (int(MEMORY_SHARE * free) - FUSION_OVERHEAD) // (BYTES_PER_PIXEL * height * width)
    return max(1, min(MAX_CUDA_BATCH_SIZE, fitting))


def plan_batch(
    device: str | torch.device, height: int, width: int, batch_size: int | None = None, host_bytes: int = 0
) -> int:
    """The batch size to fuse ``height`` x ``width`` pairs with on ``device``: ``batch_size``
    if given (at least 1, and it must fit: :func:`check_memory`), else :func:`default_batch_size`
    (which fits by construction); ``host_bytes``: what the work holds on the host besides (see
    :func:`check_memory`). Raises before any work, never during it; a given batch of more than
    one that does not fit says to try a smaller one."""
    if batch_size is None:
        return default_batch_size(device, height, width, host_bytes)
    check_batch_size(batch_size)
    try:
        check_memory(height, width, batch_size, device, host_bytes)
    except NotEnoughMemoryError as error:
        if batch_size == 1:
            raise
        raise NotEnoughMemoryError(f"{error}; try a smaller --batch-size (batch_size= in Python)") from None
    return batch_size


@contextmanager
def running_out_as_error(what: str) -> Iterator[None]:
    """Turn the allocator's failure inside the block (numpy's MemoryError, torch's "can't
    allocate memory" or CUDA out-of-memory RuntimeError) into one
    :class:`NotEnoughMemoryError` naming ``what``: the plan is an estimate, and the machine's
    memory can shrink while the work runs (other processes, ``ulimit -v``)."""
    try:
        yield
    except NotEnoughMemoryError:  # a refusal of the plan's, already one line
        raise
    except MemoryError as error:
        raise NotEnoughMemoryError(
            f"ran out of memory while {what} ({error or 'MemoryError'}); free some memory or fuse smaller images"
        ) from None
    except RuntimeError as error:
        text = str(error)
        if "can't allocate memory" not in text and "out of memory" not in text.lower():
            raise
        raise NotEnoughMemoryError(
            f"ran out of memory while {what} ({text.splitlines()[0][-160:]}); free some memory or fuse smaller images"
        ) from None


def check_decoding(name: str, shape: tuple[int, ...], bytes_per_value: int) -> None:
    """Refuse, before a pixel is decoded, a file whose declared ``shape`` would need more than
    ``MEMORY_SHARE`` of the free memory at ``bytes_per_value`` (what the reader holds per value
    while decoding): :class:`~medfuse._shared.errors.NotEnoughMemoryError` naming the file and
    the size it declares. The one limit for every reader, so that a small file that declares a
    huge image cannot exhaust the machine."""
    values = 1
    for length in shape:
        values *= int(length)
    check_host_memory(values * bytes_per_value, f"{name}: declares {' x '.join(map(str, shape))} values; reading them")


def check_batch_size(batch_size: int | None) -> None:
    """Raise :class:`~medfuse._shared.errors.InputError` unless ``batch_size`` is None (chosen
    by the memory plan) or at least 1."""
    if batch_size is not None and batch_size < 1:
        raise InputError(f"the batch size must be at least 1, got {batch_size}")
