"""What every volume reader returns and raises, whatever the format: :class:`VolumeFile` and
:class:`VolumeFileError` (the NIfTI and DICOM modules and the dispatch in
:mod:`medfuse.io.volumes` share them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medfuse._shared.errors import InputError
from medfuse.image.grid import Volume


class VolumeFileError(InputError):
    """A file or folder that cannot be read or written as a volume; the message names it."""


@dataclass(frozen=True)
class VolumeFile:
    """A volume read from ``path``: ``kind`` "nifti" or "dicom"; ``header`` the NIfTI header,
    or the DICOM datasets of the slices in ``k`` order (pixel data dropped; for a multi-frame
    file, one small dataset per frame: see :func:`_frames`); ``modality`` the DICOM Modality
    (e.g. "CT", "MR") if known; ``frames`` the frame number (from 1) of each slice ``k`` of a
    multi-frame DICOM file, empty otherwise."""

    path: Path
    kind: str
    volume: Volume
    header: object
    modality: str | None = None
    frames: tuple[int, ...] = ()
