"""Planar-contour structures: exact areas, end caps, orientation, and the Nelms 2015 analytic suite.

The suite: sphere, cylinder (axis SI and AP), cone (axis SI, apex either way) and the cone with its axis
AP ("rotated"), each 24 mm across; contours every 1, 2 and 3 mm (on the flat faces, as in the Nelms
data); a 1 Gy/mm dose along AP or SI with 16 Gy at the centre, on 1, 2 and 3 mm grids, aligned with the
contours or shifted half a voxel.

Two truths (``analytic_dvh``, independent of the engine):

* the exact DVH of the polygon stack under the half-slice slab convention (``SlabTruth``): this is what
  the contours mean, so the engine must match it tightly (asserted: 0.002 Gy, volume 1e-6);
* the Nelms truth: the smooth solid between its end contour planes, with the end sections extended half
  a slice (``ExtendedSolidTruth``). The Nelms criterion is 3 % on V, D99, D95, D50, D5, D1, D0.03cc and
  Dmean. The slab convention itself differs from the smooth solid (a staircase through the slices): the
  cases where that difference alone exceeds 3 % are listed in ``CONVENTION_BEYOND_3PCT`` and checked to be
  exactly those.
"""

import warnings

import numpy as np
import pytest
from analytic_dvh import (
    ExtendedSolidTruth,
    SlabTruth,
    contour_planes,
    nelms_shapes,
    polygon_area,
    slab_planes,
)

from SIBSpineSBRTLib.dose import analytic
from SIBSpineSBRTLib.dose.contours import ContourError, ContourStructure
from SIBSpineSBRTLib.dose.dvh import compute_dvh
from SIBSpineSBRTLib.dose.grid import DoseError, DoseGrid
from SIBSpineSBRTLib.geometry.grid import ImageGeometry
from SIBSpineSBRTLib.warnings import DoseWarning

SHAPES = nelms_shapes()
NELMS_METRICS = ("D99%", "D95%", "D50%", "D5%", "D1%", "D0.03cc", "Dmean")
ALL_METRICS = NELMS_METRICS + ("Dmax", "Dmin")
#: (shape, spacing, gradient, metric) where the slab convention alone is about 3 % from the smooth solid
#: (rotated cone, 3 mm: D99% AP -3.0 %, D95% SI +3.5 %): there the engine may exceed 3 % only by as much
#: as the exact slab truth does (it matches that truth to 0.001 Gy).
CONVENTION_AT_3PCT = {
    ("rotated_cone_AP", 3.0, "AP", "D99%"),
    ("rotated_cone_AP", 3.0, "SI", "D95%"),
}


def grid_points(g: ImageGeometry) -> np.ndarray:
    k, j, i = np.indices(g.shape)
    return g.ijk_to_ras_points(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))


def linear_dose(axis: str, spacing: float, shift: float = 0.0, gradient=None, d0=16.0, half=15.0) -> DoseGrid:
    """d0 + 1 Gy/mm x (y for AP, z for SI) on a cube of voxels whose centres span about +-half mm."""
    n = int(np.floor(half / spacing))
    c = np.arange(-n, n + 1) * spacing + shift
    c = c[np.abs(c) <= half + 1]
    g = ImageGeometry((len(c),) * 3, (c[0],) * 3, (spacing,) * 3)
    grad = np.asarray(gradient if gradient is not None else ((0, 1, 0) if axis == "AP" else (0, 0, 1)), float)
    return DoseGrid((d0 + grid_points(g) @ grad).reshape(g.shape), g, f"linear {axis} {spacing} mm")


def as_ras(planes):
    return [np.column_stack([p, np.full(len(p), z)]) for z, p in planes]


def circle(r, z=0.0, n=64, c=(0.0, 0.0)):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t), np.full(n, z)])


# -- geometry of contours -------------------------------------------------------------------------------


def test_plane_area_is_exact_with_holes_and_concave_rings():
    outer, inner = circle(10, n=50), circle(4, n=30, c=(1.0, -2.0))
    a = polygon_area(outer[:, :2]) - polygon_area(inner[:, :2])
    even_odd = ContourStructure.from_polygons("ring", [outer, inner], slice_spacing_mm=2.0)
    explicit = ContourStructure.from_polygons("ring", [outer], holes=[inner], slice_spacing_mm=2.0)
    assert even_odd.plane_area_mm2(0) == pytest.approx(a, rel=1e-9)
    assert explicit.plane_area_mm2(0) == pytest.approx(a, rel=1e-9)
    assert even_odd.volume_cc == pytest.approx(a * 2.0 / 1000, rel=1e-9)
    # a concave "C" shape and two islands on one plane
    c_shape = np.array([[0, 0], [6, 0], [6, 1], [1, 1], [1, 5], [6, 5], [6, 6], [0, 6]], float)
    island = np.array([[10, 0], [12, 0], [12, 3], [10, 3]], float)
    rings = [np.column_stack([r, np.zeros(len(r))]) for r in (c_shape, island)]
    s = ContourStructure.from_polygons("c", rings, slice_spacing_mm=1.0)
    assert s.plane_area_mm2(0) == pytest.approx(polygon_area(c_shape) + polygon_area(island), rel=1e-12)


def test_plane_grouping_spacing_and_slabs():
    zs = [-2.5, 0.0, 2.5, 5.0, 12.5]  # a gap: the last plane is its own part
    s = ContourStructure.from_polygons("s", [circle(5, z) for z in zs])
    assert s.slice_spacing_mm == pytest.approx(2.5)
    assert [p.position_mm for p in s.planes] == pytest.approx(zs)
    np.testing.assert_allclose([(p.below_mm, p.above_mm) for p in s.planes], [(1.25, 1.25)] * 5)
    none = s.with_end_caps("none")
    np.testing.assert_allclose(
        [(p.below_mm, p.above_mm) for p in none.planes], [(0, 1.25), (1.25, 1.25), (1.25, 1.25), (1.25, 0), (0, 0)]
    )


def test_end_cap_switch_changes_the_volume_by_the_end_slabs():
    planes = contour_planes(SHAPES["cone_SI_apex_sup"], 2.0)
    half = ContourStructure.from_polygons("cone", as_ras(planes))
    none = ContourStructure.from_polygons("cone", as_ras(planes), end_caps="none")
    assert half.end_caps == "half-slice" and none.end_caps == "none"
    ends = (half.plane_area_mm2(0) + half.plane_area_mm2(len(half.planes) - 1)) * 2.0 / 2 / 1000
    assert half.volume_cc - none.volume_cc == pytest.approx(ends, rel=1e-12)
    dose = linear_dose("SI", 2.0)
    dh, dn = compute_dvh(half, dose), compute_dvh(none, dose)
    assert dh.evaluated_volume_cc - dn.evaluated_volume_cc == pytest.approx(ends, rel=1e-9)
    assert dh.metric("Dmin") == pytest.approx(16 - 12 - 1.0, abs=1e-6)  # the base slab reaches z = -13
    assert dn.metric("Dmin") == pytest.approx(16 - 12, abs=1e-6)
    assert none.with_end_caps("half-slice").volume_cc == pytest.approx(half.volume_cc, rel=1e-12)


def test_contour_errors_are_named():
    with pytest.raises(ContourError, match="single plane"):
        ContourStructure.from_polygons("one", [circle(5)])
    with pytest.raises(ContourError, match="parallel planes"):
        tilted = circle(5, 5.0) @ np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
        ContourStructure.from_polygons("tilt", [circle(5), tilted])
    with pytest.raises(ContourError, match="not planar"):
        bent = circle(5)
        bent[:10, 2] = 2.0
        ContourStructure.from_polygons("bent", [bent, circle(5, 3.0)], normal=(0, 0, 1))
    with pytest.raises(ContourError, match="End caps"):
        ContourStructure.from_polygons("x", [circle(5), circle(5, 1.0)], end_caps="smooth")
    with pytest.raises(ContourError, match="no contour"):
        ContourStructure.from_polygons("x", [np.zeros((2, 3))])
    s = ContourStructure.from_polygons("flat", [circle(5)], slice_spacing_mm=3.0, end_caps="none")
    with pytest.raises(DoseError, match="no volume"):
        compute_dvh(s, linear_dose("AP", 2.0))


def test_contours_partly_outside_the_dose_grid_warn():
    s = ContourStructure.from_polygons("GTV", [circle(4, z, c=(13.0, 0.0)) for z in (0.0, 1.0, 2.0)])
    dose = linear_dose("AP", 1.0)  # voxel cubes cover |x| <= 15.5
    with pytest.warns(DoseWarning, match="of GTV lies outside the dose grid"):
        dvh = compute_dvh(s, dose)
    assert 0.05 < dvh.fraction_outside < 0.3
    far = ContourStructure.from_polygons("GTV", [circle(4, z, c=(60.0, 0.0)) for z in (0.0, 1.0)])
    with pytest.raises(DoseError, match="entirely outside"):
        compute_dvh(far, dose)


def test_oblique_contour_planes_give_the_same_dvh():
    """The whole setup rotated (contours on oblique planes, gradient rotated with them)."""
    planes = contour_planes(SHAPES["rotated_cone_AP"], 2.0)
    axial = ContourStructure.from_polygons("rc", as_ras(planes))
    ref = compute_dvh(axial, linear_dose("SI", 2.0, d0=40.0, half=20.0))
    a = np.radians(33.0)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]) @ np.array(
        [[np.cos(0.4), 0, np.sin(0.4)], [0, 1, 0], [-np.sin(0.4), 0, np.cos(0.4)]]
    )
    oblique = ContourStructure.from_polygons("rc", [p @ rot.T for p in as_ras(planes)])
    assert np.asarray(oblique.normal) == pytest.approx(rot @ np.array([0, 0, 1.0]), abs=1e-9)
    assert oblique.volume_cc == pytest.approx(axial.volume_cc, rel=1e-6)
    dvh = compute_dvh(oblique, linear_dose("SI", 2.0, gradient=rot @ np.array([0, 0, 1.0]), d0=40.0, half=20.0))
    for name in ALL_METRICS:
        assert dvh.metric(name) == pytest.approx(ref.metric(name), abs=2e-3), name


# -- the analytic formulas themselves -------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, axis, formula",
    [
        ("sphere", "AP", "sphere"),
        ("sphere", "SI", "sphere"),
        ("cylinder_SI", "SI", "cyl_par"),
        ("cylinder_SI", "AP", "cyl_perp"),
        ("cylinder_AP", "AP", "cyl_par"),
        ("cylinder_AP", "SI", "cyl_perp"),
        ("cone_SI_apex_sup", "SI", "cone_par_apex_high"),
        ("cone_SI_apex_inf", "SI", "cone_par_apex_low"),
        ("cone_SI_apex_sup", "AP", "cone_perp"),
        ("rotated_cone_AP", "AP", "cone_par_apex_low"),
        ("rotated_cone_AP", "SI", "cone_perp"),
    ],
)
def test_nelms_closed_forms_match_quadrature(shape, axis, formula):
    """Each closed form against the section quadrature of the full solid (no end caps). The quadrature
    converges to the closed forms (error proportional to its step near the singular sections)."""
    truth = ExtendedSolidTruth(SHAPES[shape], -12.0, 12.0, 0.0, axis)
    lo, hi = truth.min, truth.max
    f = {
        "sphere": lambda d: analytic.sphere_fraction(d, 12.0, 16.0, 1.0),
        "cyl_par": lambda d: analytic.cylinder_parallel_fraction(d, lo, hi),
        "cyl_perp": lambda d: analytic.cylinder_perpendicular_fraction(d, lo, hi),
        "cone_par_apex_high": lambda d: analytic.cone_parallel_fraction(d, lo, hi, apex_at_high_dose=True),
        "cone_par_apex_low": lambda d: analytic.cone_parallel_fraction(d, lo, hi),
        "cone_perp": lambda d: analytic.cone_perpendicular_fraction(d, lo, hi),
    }[formula]
    doses = np.linspace(lo, hi, 97)
    np.testing.assert_allclose(f(doses), truth.volume_at(doses) / truth.volume_cc, atol=1e-4)
    closed = analytic.AnalyticDVH(f, lo, hi, truth.volume_cc)
    for name in ("D95%", "D50%", "D0.03cc", "Dmean"):
        assert closed.metric(name) == pytest.approx(truth.metric(name), abs=1e-3), name


def test_rotated_cone_coefficient_one_is_wrong():
    u = np.linspace(-1, 1, 2001)
    beta = (u + 1) / 2
    right = analytic.cone_perpendicular_fraction(beta, 0.0, 1.0)
    au = np.maximum(np.abs(u), 1e-300)
    wrong = (np.arccos(u) - u * np.sqrt(1 - u * u) + u**3 * np.log((1 + np.sqrt(1 - au * au)) / au)) / np.pi
    assert np.abs(wrong - right).max() == pytest.approx(0.16, abs=0.01)


# -- the Nelms suite ------------------------------------------------------------------------------------


def _truths(shape, spacing, axis):
    key = (shape, spacing, axis)
    if key not in _truths.cache:
        planes = contour_planes(SHAPES[shape], spacing)
        slab = SlabTruth(slab_planes(planes, spacing), 1 if axis == "AP" else 2, 16.0)
        smooth = ExtendedSolidTruth(SHAPES[shape], planes[0][0], planes[-1][0], spacing / 2, axis)
        _truths.cache[key] = (
            planes,
            {m: slab.metric(m) for m in ALL_METRICS},
            {m: smooth.metric(m) for m in ALL_METRICS},
            slab.volume_cc,
            smooth.volume_cc,
        )
    return _truths.cache[key]


_truths.cache = {}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("spacing", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("axis", ["AP", "SI"])
@pytest.mark.parametrize("grid", ["aligned", "shifted"])
def test_nelms_suite(shape, spacing, axis, grid):
    planes, slab, smooth, slab_volume, smooth_volume = _truths(shape, spacing, axis)
    structure = ContourStructure.from_polygons(shape, as_ras(planes))
    dose = linear_dose(axis, spacing, shift=0.0 if grid == "aligned" else spacing / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the grid covers the structure: no warning
        dvh = compute_dvh(structure, dose)
    # the exact meaning of the contours
    assert dvh.volume_cc == pytest.approx(slab_volume, rel=1e-6)
    assert dvh.evaluated_volume_cc == pytest.approx(slab_volume, rel=1e-6)
    worst_slab = max(abs(dvh.metric(m) - slab[m]) for m in ALL_METRICS)
    assert worst_slab <= 2e-3, {m: dvh.metric(m) - slab[m] for m in ALL_METRICS}
    # the Nelms criterion against the smooth solid
    rel = {m: 100 * (dvh.metric(m) - smooth[m]) / smooth[m] for m in NELMS_METRICS}
    rel["Volume"] = 100 * (dvh.volume_cc - smooth_volume) / smooth_volume
    for m, e in rel.items():
        if (shape, spacing, axis, m) in CONVENTION_AT_3PCT:
            convention = 100 * (slab[m] - smooth[m]) / smooth[m]
            assert abs(convention) > 2.5 and abs(e - convention) < 0.05, (m, e, convention)
        else:
            assert abs(e) <= 3.0, (m, rel)


@pytest.mark.parametrize("shape", ["sphere", "cylinder_AP", "rotated_cone_AP"])
def test_dose_grid_size_does_not_matter_in_a_linear_field(shape):
    planes, slab, _, _, _ = _truths(shape, 3.0, "AP")
    structure = ContourStructure.from_polygons(shape, as_ras(planes))
    for spacing in (1.0, 2.0):
        dvh = compute_dvh(structure, linear_dose("AP", spacing, shift=0.3))
        for m in ALL_METRICS:
            assert dvh.metric(m) == pytest.approx(slab[m], abs=2e-3), (spacing, m)


@pytest.mark.parametrize("spacing", [1.0, 3.0])
@pytest.mark.parametrize("axis", ["AP", "SI"])
def test_nelms_test3_volume_error_along_the_dvh(spacing, axis):
    """Nelms Test 3: the volume error along the whole DVH, every 0.1 Gy: within 0.01 % of the structure
    volume of the slab truth, and within 2.5 % of the smooth solid (PlanIQ: -1.5 to +0.8 %)."""
    worst_smooth = 0.0
    for shape in SHAPES:
        planes = contour_planes(SHAPES[shape], spacing)
        slab = SlabTruth(slab_planes(planes, spacing), 1 if axis == "AP" else 2, 16.0)
        smooth = ExtendedSolidTruth(SHAPES[shape], planes[0][0], planes[-1][0], spacing / 2, axis)
        dvh = compute_dvh(ContourStructure.from_polygons(shape, as_ras(planes)), linear_dose(axis, spacing))
        levels, percent = dvh.curve(0.1)
        levels, percent = levels[levels <= 28.5], percent[levels <= 28.5]
        exact = 100 * slab.volume_at(levels) / slab.volume_cc
        assert np.abs(percent - exact).max() < 0.01, shape
        ideal = 100 * smooth.volume_at(levels) / smooth.volume_cc
        worst_smooth = max(worst_smooth, np.abs(percent - ideal).max())
    assert worst_smooth < 2.5


# -- adaptive sampling ----------------------------------------------------------------------------------


def test_planes_scanned_together_keep_their_areas():
    """All planes are scanned at once: a plane with a hole, one with two islands and a gap between parts."""
    outer, inner = circle(10, 0.0, n=50), circle(4, 0.0, n=30, c=(1.0, -2.0))
    islands = [circle(3, 2.0, c=(-5.0, 0.0)), circle(2, 2.0, c=(6.0, 1.0))]
    far = circle(6, 9.0, n=40, c=(0.0, 40.0))
    s = ContourStructure.from_polygons("mix", [outer, inner, *islands, far], slice_spacing_mm=2.0)
    expected = [
        polygon_area(outer[:, :2]) - polygon_area(inner[:, :2]),
        sum(polygon_area(r[:, :2]) for r in islands),
        polygon_area(far[:, :2]),
    ]
    np.testing.assert_allclose(s.plane_areas_mm2(), expected, rtol=1e-7)  # vertices snapped to 1e-7 mm
    assert [s.plane_area_mm2(p) for p in range(3)] == pytest.approx(expected, rel=1e-7)
    dose = linear_dose("AP", 2.0, half=50.0, d0=60.0)
    dvh = compute_dvh(s, dose)
    assert dvh.evaluated_volume_cc == pytest.approx(s.volume_cc, rel=1e-12)
    assert dvh.metric("Dmax") == pytest.approx(60 + 46.0, abs=2e-3)  # the far disc's tip (a box stands in)
    assert dvh.metric("Dmean") == pytest.approx(s.dvh(dose, step_mm=0.5).metric("Dmean"), abs=1e-9)


def test_contours_in_a_curved_dose_match_a_fine_uniform_sampling():
    """A curved dose on a 2.5 mm grid oblique to nothing: the default sampling (pieces merged, slabs whole,
    cut on the dose grid's planes, tails refined) against 0.2 mm boxes and 0.2 mm layers everywhere."""
    planes = contour_planes(SHAPES["rotated_cone_AP"], 3.0)
    s = ContourStructure.from_polygons("rc", as_ras(planes))
    c = np.arange(-16, 16.1, 2.5) + 0.3
    g = ImageGeometry((len(c),) * 3, (c[0],) * 3, (2.5,) * 3)
    x, y, z = grid_points(g).T
    dose = DoseGrid((20 + 30 / (1 + np.exp(-(y - 2) / 3)) + 0.05 * x * z).reshape(g.shape), g, "curved")
    dvh, ref = compute_dvh(s, dose), s.dvh(dose, step_mm=0.2)
    assert len(dvh.doses) < len(ref.doses) / 10
    for name in ALL_METRICS:
        assert dvh.metric(name) == pytest.approx(ref.metric(name), abs=0.005), name
