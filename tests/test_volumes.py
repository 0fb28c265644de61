import numpy as np
import pytest
import torch
from volume_data import oblique_affine, phantom

from medfuse.clinical.grids import GridMismatchError, check_same_grid, grid_differences, resample
from medfuse.dran.rules import get_rule
from medfuse.fusion.engine import fuse_tensors
from medfuse.fusion.volumes import fuse_volumes
from medfuse.image.grid import Geometry, Volume, volume_slices


def test_geometry_parts():
    geometry = Geometry(oblique_affine(spacing=(0.9, 1.1, 2.5), origin=(-12, 30.5, 7.25), angle=0.3))
    np.testing.assert_allclose(geometry.spacing, [0.9, 1.1, 2.5])
    np.testing.assert_allclose(geometry.orientation.T @ geometry.orientation, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(geometry.origin, [-12, 30.5, 7.25])
    rebuilt = Geometry.from_parts(geometry.spacing, geometry.orientation, geometry.origin)
    np.testing.assert_allclose(rebuilt.affine, geometry.affine, atol=1e-12)
    with pytest.raises(ValueError, match="singular"):
        Geometry(np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="3-D"):
        Volume(np.zeros((4, 4)), geometry)


@pytest.mark.parametrize(
    "change, word",
    [
        (dict(spacing=(0.9, 1.1, 3.0)), "spacing"),
        (dict(origin=(-12.0, 30.5, 9.0)), "origin"),
        (dict(angle=0.35), "orientation"),
    ],
)
def test_grid_differences_name_what_differs(change, word):
    base = Geometry(oblique_affine())
    other = Geometry(oblique_affine(**change))
    differences = grid_differences((8, 8, 4), base, (8, 8, 4), other)
    assert len(differences) == 1 and differences[0].startswith(word)
    assert grid_differences((8, 8, 4), base, (8, 8, 5), base) == ["shape 8x8x4 vs 8x8x5"]
    nearly = Geometry(oblique_affine(origin=(-12.0, 30.5, 7.2505)))
    assert grid_differences((8, 8, 4), base, (8, 8, 4), nearly) == []


def test_check_same_grid_message_lists_all_differences():
    a = Volume(np.zeros((8, 8, 4)), Geometry(oblique_affine()))
    b = Volume(np.zeros((8, 8, 5)), Geometry(oblique_affine(spacing=(1, 1, 1), origin=(0, 0, 0))))
    with pytest.raises(GridMismatchError) as error:
        check_same_grid(a, b)
    message = str(error.value)
    assert "different grids" in message and all(w in message for w in ("shape", "spacing", "origin"))
    check_same_grid(a, a)


def test_resample_onto_own_grid_is_identity_and_shift_moves_voxels():
    data = phantom((12, 10, 5))
    geometry = Geometry(oblique_affine())
    same = resample(Volume(data, geometry), data.shape, geometry)
    np.testing.assert_allclose(same.data, data, atol=1e-5)
    shifted = Geometry(geometry.affine @ np.array([[1, 0, 0, 2], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1.0]]))
    moved = resample(Volume(data, geometry), (10, 10, 4), shifted, slab=3)
    np.testing.assert_allclose(moved.data, data[2:12, :, 1:5], atol=1e-5)
    assert moved.geometry is shifted


def test_resample_is_linear_between_voxels_and_fills_outside():
    data = np.zeros((4, 4, 2), np.float32)
    data[1] = 1.0
    geometry = Geometry(np.diag([2.0, 1.0, 1.0, 1.0]))
    half = Geometry(np.diag([1.0, 1.0, 1.0, 1.0]))
    fine = resample(Volume(data, geometry), (9, 4, 2), half, fill=0.0)
    np.testing.assert_allclose(fine.data[:, 1, 0], [0, 0.5, 1, 0.5, 0, 0, 0, 0, 0], atol=1e-6)
    outside = resample(
        Volume(np.ones((4, 4, 2), np.float32), geometry),
        (4, 4, 2),
        Geometry(np.diag([2.0, 1.0, 1.0, 1.0]) @ np.array([[1, 0, 0, 10], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])),
    )
    assert not outside.data.any()


def test_volume_slices_are_row_by_column_images():
    data = np.arange(24).reshape(4, 3, 2)
    slices = volume_slices(data)
    assert slices.shape == (2, 3, 4) and slices[1, 2, 3] == data[3, 2, 1]


@pytest.mark.parametrize("rule, batch_size", [("sfnn", 4), ("average", 1), ("l1", 8), ("sfnn-map", 3)])
def test_fuse_volumes_equals_slice_by_slice_fusion(tiny_model, rule, batch_size):
    a = phantom((16, 12, 5))
    b = phantom((16, 12, 5), inner=0.2, outer=0.9, shift=0.3)
    calls = []
    fused = fuse_volumes(tiny_model, a, b, rule, batch_size=batch_size, progress=calls.append)
    assert fused.shape == a.shape and fused.dtype == np.float32
    assert 0 <= fused.min() and fused.max() <= 1 and sum(calls) == 5
    for k in range(5):
        one = fuse_tensors(
            tiny_model,
            torch.from_numpy(a[:, :, k].T.copy())[None, None],
            torch.from_numpy(b[:, :, k].T.copy())[None, None],
            get_rule(rule),
        )
        np.testing.assert_allclose(fused[:, :, k], np.clip(one[0, 0].numpy().T, 0, 1), atol=1e-5)


def test_fuse_volumes_refuses_bad_input(tiny_model):
    with pytest.raises(ValueError, match="one shape"):
        fuse_volumes(tiny_model, np.zeros((4, 4, 2)), np.zeros((4, 4, 3)), "average")
    with pytest.raises(ValueError, match="at least 2 x 2"):
        fuse_volumes(tiny_model, np.zeros((1, 4, 2)), np.zeros((1, 4, 2)), "average")
    with pytest.raises(ValueError, match="batch size"):
        fuse_volumes(tiny_model, np.zeros((4, 4, 2)), np.zeros((4, 4, 2)), "average", batch_size=0)
