"""Volumes: a float array on a grid, grid comparison, linear resampling, slice-batched fusion.

Pure functions on arrays; no files (those are in :mod:`medfuse.volume_io`).

A :class:`Volume` holds a 3-D array indexed ``(i, j, k)`` and a :class:`Geometry`: the 4 x 4
affine that maps voxel indices to world coordinates in millimetres, in NIfTI's RAS+
convention (x towards the patient's right, y anterior, z superior; DICOM's LPS
coordinates have x and y negated). Its columns are the voxel axes' directions scaled by the
spacing, its last column the world position of voxel (0, 0, 0). The third index ``k`` is the
slice axis: volumes are fused slice by slice along it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.ndimage import map_coordinates
from torch import nn

from medfuse.fusion import fuse_tensors, plan_batch
from medfuse.rules import FusionRule, get_rule

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM's and ITK's LPS world coordinates to RAS+ (x and y negated), as a 4 x 4 affine; it is
its own inverse."""
GRID_TOLERANCE = 1e-3
"""Default tolerance of grid comparison: mm for spacing and origin, unitless for direction cosines."""


@dataclass(frozen=True)
class Geometry:
    """Where a voxel grid lies: ``affine`` (4 x 4) maps ``(i, j, k, 1)`` to RAS+ millimetres."""

    affine: np.ndarray

    def __post_init__(self) -> None:
        affine = np.array(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise ValueError(f"an affine must be a finite 4 x 4 matrix, got shape {affine.shape}")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("the affine is singular (a zero spacing or parallel axes)")
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
    def from_parts(cls, spacing: tuple[float, float, float], orientation: np.ndarray | None = None,
                   origin: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Geometry:
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
            raise ValueError(f"a volume must be 3-D, got shape {np.shape(self.data)}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k."""
        return tuple(int(n) for n in self.data.shape)


class GridMismatchError(ValueError):
    """Two volumes are not on one grid; the message says what differs."""


def _vector(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def grid_differences(shape_a: tuple[int, ...], geometry_a: Geometry, shape_b: tuple[int, ...],
                     geometry_b: Geometry, tolerance: float = GRID_TOLERANCE) -> list[str]:
    """What differs between two grids, one phrase each for shape, spacing, orientation and origin.

    Spacing and origin differ when a component differs by more than ``tolerance`` mm; the
    orientation when a direction cosine differs by more than ``tolerance``. Empty when equal.
    """
    differences = []
    if tuple(shape_a) != tuple(shape_b):
        differences.append(f"shape {'x'.join(map(str, shape_a))} vs {'x'.join(map(str, shape_b))}")
    if np.abs(geometry_a.spacing - geometry_b.spacing).max() > tolerance:
        differences.append(f"spacing {_vector(geometry_a.spacing)} vs {_vector(geometry_b.spacing)} mm")
    angle_gap = np.abs(geometry_a.orientation - geometry_b.orientation).max()
    if angle_gap > tolerance:
        differences.append(f"orientation (direction cosines differ by up to {angle_gap:.3g})")
    if np.abs(geometry_a.origin - geometry_b.origin).max() > tolerance:
        differences.append(f"origin {_vector(geometry_a.origin)} vs {_vector(geometry_b.origin)} mm")
    return differences


def check_same_grid(volume_a: Volume, volume_b: Volume, tolerance: float = GRID_TOLERANCE) -> None:
    """Raise :class:`GridMismatchError` naming what differs unless both volumes share a grid."""
    differences = grid_differences(volume_a.shape, volume_a.geometry, volume_b.shape, volume_b.geometry, tolerance)
    if differences:
        raise GridMismatchError("the volumes are on different grids: " + "; ".join(differences))


def resample(volume: Volume, shape: tuple[int, int, int], geometry: Geometry, fill: float = 0.0,
             slab: int = 8) -> Volume:
    """``volume`` sampled on the grid ``(shape, geometry)`` by trilinear interpolation.

    Each target voxel ``t`` lies at world point ``A_target t``, which is voxel
    ``A_volume^-1 A_target t`` of the source; its value is interpolated there
    (``scipy.ndimage.map_coordinates``, order 1). Points outside the source get ``fill``,
    blended linearly within one voxel of its edge. This aligns grids that describe the
    same world space; it is not registration and cannot correct a patient's movement.
    Work goes ``slab`` target slices at a time to bound memory.
    """
    mapping = np.linalg.inv(volume.geometry.affine) @ geometry.affine
    source = np.asarray(volume.data, dtype=np.float32)
    out = np.empty(shape, dtype=np.float32)
    i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for start in range(0, shape[2], slab):
        stop = min(start + slab, shape[2])
        k = np.arange(start, stop)
        indices = np.stack([
            np.broadcast_to(i[..., None], (*i.shape, k.size)),
            np.broadcast_to(j[..., None], (*j.shape, k.size)),
            np.broadcast_to(k, (*i.shape, k.size)),
        ]).reshape(3, -1).astype(np.float64)
        coordinates = mapping[:3, :3] @ indices + mapping[:3, 3:]
        values = map_coordinates(source, coordinates, order=1, mode="constant", cval=fill)
        out[:, :, start:stop] = values.reshape(shape[0], shape[1], stop - start)
    return Volume(out, geometry)


def volume_slices(data: np.ndarray) -> np.ndarray:
    """(I, J, K) volume -> (K, J, I) stack of slices: slice k as an image with rows along j
    and columns along i (a DICOM slice's rows and columns)."""
    return np.asarray(data).transpose(2, 1, 0)


@torch.no_grad()
def fuse_volumes(model: nn.Module, volume_a: np.ndarray, volume_b: np.ndarray,
                 rule: str | FusionRule, batch_size: int | None = None,
                 progress: Callable[[int], object] | None = None) -> np.ndarray:
    """Fuse two (I, J, K) volumes in [0, 1] on one grid, slice by slice along k.

    ``batch_size`` slices at a time (default :func:`medfuse.fusion.default_batch_size`: 1 on
    the CPU, as many as fit in the free memory on CUDA) go through
    :func:`medfuse.fusion.fuse_tensors` as one (N, 1, J, I) batch (the rules act per item of
    the batch, so this equals fusing the slices one by one).
    ``progress(n)`` is called after each batch with its number of slices. Returns float32
    (I, J, K) in [0, 1] (the fused slices, clipped). Raises
    :class:`~medfuse.fusion.NotEnoughMemoryError` before any work if one batch would not fit.
    """
    volume_a, volume_b = np.asarray(volume_a), np.asarray(volume_b)
    if volume_a.ndim != 3 or volume_a.shape != volume_b.shape:
        raise ValueError(f"expected two 3-D volumes of one shape, got {volume_a.shape} and {volume_b.shape}")
    if min(volume_a.shape[:2]) < 2:
        raise ValueError(f"slices must be at least 2 x 2 voxels, got {volume_a.shape[0]} x {volume_a.shape[1]}")
    rule_function = get_rule(rule) if isinstance(rule, str) else rule
    device = next(model.parameters()).device
    width, height = volume_a.shape[:2]
    batch_size = plan_batch(device, height, width, batch_size)
    slices_a, slices_b = volume_slices(volume_a), volume_slices(volume_b)
    fused = np.empty(slices_a.shape, dtype=np.float32)
    for start in range(0, len(slices_a), batch_size):
        stop = min(start + batch_size, len(slices_a))
        batch_a = torch.from_numpy(np.ascontiguousarray(slices_a[start:stop], dtype=np.float32))
        batch_b = torch.from_numpy(np.ascontiguousarray(slices_b[start:stop], dtype=np.float32))
        out = fuse_tensors(model, batch_a[:, None].to(device), batch_b[:, None].to(device), rule_function)
        fused[start:stop] = out[:, 0].float().cpu().numpy()
        if progress is not None:
            progress(stop - start)
    return np.ascontiguousarray(np.clip(volume_slices(fused), 0.0, 1.0))
