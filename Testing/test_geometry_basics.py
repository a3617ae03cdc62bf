"""ImageGeometry and Mask: index/patient mapping, patient directions, set operations, immutability."""

import numpy as np
import pytest

from SIBSpineSBRTLib.geometry.grid import GeometryError, ImageGeometry
from SIBSpineSBRTLib.geometry.masks import Mask, union_all

LPS_LIKE = ((-1, 0, 0), (0, -1, 0), (0, 0, 1))


def rotation(axis, degrees):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    m = {"S": [[c, -s, 0], [s, c, 0], [0, 0, 1]], "R": [[1, 0, 0], [0, c, -s], [0, s, c]]}[axis]
    return np.array(m)


def test_ijk_ras_round_trip_and_matrix():
    g = ImageGeometry((10, 20, 30), (5.0, -3.0, 12.0), (0.98, 0.9, 1.25), LPS_LIKE)
    m = g.ijk_to_ras
    assert np.allclose(m[:3, 3], (5, -3, 12))
    # voxel (i=1, j=0, k=0) is one column spacing towards the patient's left (-R)
    assert np.allclose(g.ijk_to_ras_points([[1, 0, 0]]), [[5 - 0.98, -3, 12]])
    assert np.allclose(g.ijk_to_ras_points([[0, 0, 2]]), [[5, -3, 14.5]])
    pts = np.random.default_rng(0).uniform(-5, 40, (50, 3))
    assert np.allclose(g.ijk_to_ras_points(g.ras_to_ijk_points(pts)), pts)
    again = ImageGeometry.from_ijk_to_ras(m, g.shape)
    assert again.same_grid(g) and np.allclose(again.spacing, g.spacing)


def test_patient_directions_on_flipped_and_permuted_grids():
    g = ImageGeometry((4, 5, 6), (0, 0, 0), (1, 1, 2), LPS_LIKE)
    assert g.axis_for_direction("S") == (0, 1)  # numpy axis 0 (k), increasing index
    assert g.axis_for_direction("R") == (2, -1)  # i runs towards the left
    assert g.axis_for_direction("A") == (1, -1)
    # sagittal-like grid: i -> A, j -> S, k -> L
    perm = ImageGeometry((4, 5, 6), (0, 0, 0), (1, 1, 1), ((0, 0, -1), (1, 0, 0), (0, 1, 0)))
    assert perm.axis_for_direction("S") == (1, 1)
    assert perm.axis_for_direction("A") == (2, 1)
    assert perm.axis_for_direction("L") == (0, 1)
    oblique = ImageGeometry((4, 5, 6), (0, 0, 0), (1, 1, 1), rotation("S", 20))
    assert not oblique.is_axis_aligned
    with pytest.raises(GeometryError, match="oblique"):
        oblique.axis_for_direction("R")  # rotated about S: k still points S, but no axis points R
    assert oblique.axis_for_direction("S") == (0, 1)


def test_invalid_geometry_is_refused():
    with pytest.raises(GeometryError, match="spacing"):
        ImageGeometry((2, 2, 2), (0, 0, 0), (1, 0, 1))
    with pytest.raises(GeometryError, match="orthonormal"):
        ImageGeometry((2, 2, 2), (0, 0, 0), (1, 1, 1), ((1, 0, 0), (1, 0, 0), (0, 0, 1)))
    with pytest.raises(GeometryError, match="shape"):
        Mask(np.zeros((2, 2, 3), bool), ImageGeometry((2, 2, 2), (0, 0, 0), (1, 1, 1)))


def test_crop_keeps_voxel_positions():
    g = ImageGeometry((10, 12, 14), (1, 2, 3), (0.5, 0.7, 1.1), rotation("R", 10))
    c = g.crop((2, 3, 4), (5, 9, 10))
    assert c.shape == (3, 6, 6)
    assert np.allclose(c.ijk_to_ras_points([[0, 0, 0]]), g.ijk_to_ras_points([[4, 3, 2]]))


def test_mask_operations_are_new_and_exact():
    g = ImageGeometry((6, 6, 6), (0, 0, 0), (1, 1, 2))
    a = np.zeros(g.shape, bool)
    a[1:4, 1:4, 1:4] = True
    b = np.zeros(g.shape, bool)
    b[2:5, 2:5, 2:5] = True
    ma, mb = Mask(a, g, "A"), Mask(b, g, "B")
    assert ma.union(mb).voxel_count == 27 + 27 - 8
    assert ma.intersect(mb).voxel_count == 8
    assert ma.subtract(mb).voxel_count == 19
    assert union_all([ma, mb]).voxel_count == 46
    assert ma.volume_cc == pytest.approx(27 * 2 / 1000)
    assert ma.bounding_box() == ((1, 1, 1), (4, 4, 4))
    with pytest.raises(ValueError):
        ma.array[0, 0, 0] = True  # masks are read-only
    a[0, 0, 0] = True  # the caller's array is copied, not shared
    assert not ma.array[0, 0, 0]


def test_operations_on_different_grids_are_refused():
    g1 = ImageGeometry((4, 4, 4), (0, 0, 0), (1, 1, 1))
    g2 = ImageGeometry((4, 4, 4), (0.5, 0, 0), (1, 1, 1))
    with pytest.raises(GeometryError, match="different grids"):
        Mask(np.ones(g1.shape), g1, "A").union(Mask(np.ones(g2.shape), g2, "B"))
