"""Volumes: a float array on a grid in world space. Pure data, numpy only.

A :class:`Volume` holds a 3-D array indexed ``(i, j, k)`` and a :class:`Geometry`: the 4 x 4
affine that maps voxel indices to world coordinates in millimetres, in NIfTI's RAS+
convention (x towards the patient's right, y anterior, z superior; DICOM's LPS
coordinates have x and y negated). Its columns are the voxel axes' directions scaled by the
spacing, its last column the world position of voxel (0, 0, 0). The third index ``k`` is the
slice axis: volumes are fused slice by slice along it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medfuse._shared.errors import InputError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM's and ITK's LPS world coordinates to RAS+ (x and y negated), as a 4 x 4 affine; it is
its own inverse."""


@dataclass(frozen=True)
class Geometry:
    """Where a voxel grid lies: ``affine`` (4 x 4) maps ``(i, j, k, 1)`` to RAS+ millimetres."""

    affine: np.ndarray

    def __post_init__(self) -> None:
        affine = np.array(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise InputError(f"an affine must be a finite 4 x 4 matrix, got shape {affine.shape}")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise InputError("the affine is singular (a zero spacing or parallel axes)")
        object.__setattr__(self, "affine", affine)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along i, j, k in mm: the lengths of the affine's first three columns."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def orientation(self) -> np.ndarray:
        """3 x 3 direction cosines: column n is the unit world direction of voxel axis n."""
        return self.affine[:3, :3] / self.spacing

    @property
    def origin(self) -> np.ndarray:
        """World position (mm) of voxel (0, 0, 0)."""
        return self.affine[:3, 3].copy()

    @classmethod
    def from_parts(
        cls,
        spacing: tuple[float, float, float],
        orientation: np.ndarray | None = None,
        origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> Geometry:
        """A geometry from spacing (mm), direction cosines (columns; default identity) and origin."""
        affine = np.eye(4)
        directions = np.eye(3) if orientation is None else np.asarray(orientation, dtype=np.float64)
        affine[:3, :3] = directions * np.asarray(spacing, dtype=np.float64)
        affine[:3, 3] = origin
        return cls(affine)


@dataclass(frozen=True)
class Volume:
    """A 3-D float array ``data`` indexed ``(i, j, k)`` with its :class:`Geometry`."""

    data: np.ndarray
    geometry: Geometry

    def __post_init__(self) -> None:
        if np.ndim(self.data) != 3:
            raise InputError(f"a volume must be 3-D, got shape {np.shape(self.data)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k."""
        i, j, k = self.data.shape  # 3-D: checked on creation
        return int(i), int(j), int(k)


def volume_slices(data: np.ndarray) -> np.ndarray:
    """(I, J, K) volume -> (K, J, I) stack of slices: slice k as an image with rows along j
    and columns along i (a DICOM slice's rows and columns)."""
    return np.asarray(data).transpose(2, 1, 0)
