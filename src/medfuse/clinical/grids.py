"""Grids: comparing two volumes' grids and resampling one onto another (numpy and scipy, no torch).

Pure functions on :class:`~medfuse.image.grid.Volume`; no files (those are in
:mod:`medfuse.io.volumes`).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from medfuse._shared.errors import InputError
from medfuse.image.grid import Geometry, Volume

GRID_TOLERANCE = 1e-3
"""Default tolerance of grid comparison: mm for spacing and origin, unitless for direction cosines."""


class GridMismatchError(InputError):
    """Two volumes are not on one grid; the message says what differs."""


def _vector(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def grid_differences(
    shape_a: tuple[int, ...],
    geometry_a: Geometry,
    shape_b: tuple[int, ...],
    geometry_b: Geometry,
    tolerance: float = GRID_TOLERANCE,
) -> list[str]:
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


def resample(
    volume: Volume, shape: tuple[int, int, int], geometry: Geometry, fill: float = 0.0, slab: int = 8
) -> Volume:
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
        indices = (
            np.stack(
                [
                    np.broadcast_to(i[..., None], (*i.shape, k.size)),
                    np.broadcast_to(j[..., None], (*j.shape, k.size)),
                    np.broadcast_to(k, (*i.shape, k.size)),
                ]
            )
            .reshape(3, -1)
            .astype(np.float64)
        )
        coordinates = mapping[:3, :3] @ indices + mapping[:3, 3:]
        values = map_coordinates(source, coordinates, order=1, mode="constant", cval=fill)
        out[:, :, start:stop] = values.reshape(shape[0], shape[1], stop - start)
    return Volume(out, geometry)
