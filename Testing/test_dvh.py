"""DVH engine on labelmaps: exactness against independent truths, orientation invariance, small
structures, speed, and the named errors and warnings.

Truths come from ``analytic_dvh`` (independent of the engine): a voxelised structure in a linear dose has
a known dose distribution inside every voxel, so its DVH is known exactly.
"""

import time
import warnings

import numpy as np
import pytest
from analytic_dvh import BoxTail, VoxelisedTruth

from SIBSpineSBRTLib.dose.analytic import sphere_fraction
from SIBSpineSBRTLib.dose.dvh import (
    DVH,
    _fraction_at_or_above,
    _mask_boxes,
    choose_supersampling,
    compute_dvh,
    parse_metric,
)
from SIBSpineSBRTLib.dose.grid import DOSE_UNITS_TO_GY, DoseError, DoseGrid
from SIBSpineSBRTLib.geometry.grid import ImageGeometry
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.warnings import DoseWarning

CT_SPACING = (0.98, 0.98, 1.25)
D_CENTRE = 30.0
METRICS = ("D0.03cc", "D2%", "D50%", "D98%", "Dmean")
GRADIENTS = {"AP": (0.0, 1.0, 0.0), "SI": (0.0, 0.0, 1.0), "oblique": (1 / 3, -2 / 3, 2 / 3)}  # 1 Gy/mm
LPS_LIKE = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))


def rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def grid_points(g: ImageGeometry) -> np.ndarray:
    k, j, i = np.indices(g.shape)
    return g.ijk_to_ras_points(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))


def sphere_mask(radius, centre, spacing=CT_SPACING, directions=None, name="sphere"):
    """Voxels whose centre lies in the sphere, on a grid whose voxel 0 is not centred on the sphere."""
    directions = np.eye(3) if directions is None else np.asarray(directions, float)
    n = [int(np.ceil((radius + 2) / s)) * 2 + 1 for s in spacing]
    offset = np.array([0.23, -0.41, 0.37])  # sphere centre vs the nearest voxel centre, in mm
    origin = np.asarray(centre) - offset - directions @ (np.array(spacing) * (np.array(n) // 2))
    g = ImageGeometry((n[2], n[1], n[0]), tuple(origin), spacing, tuple(map(tuple, directions)))
    inside = np.linalg.norm(grid_points(g) - np.asarray(centre), axis=1) <= radius
    return Mask(inside.reshape(g.shape), g, name)


def linear_dose(gradient, centre, spacing=2.5, half_mm=16.0, directions=None, shift=(0.7, -1.1, 0.4), d0=D_CENTRE):
    """d0 + g.(x - centre) on a grid around ``centre`` whose origin is offset by ``shift`` (mm)."""
    directions = np.eye(3) if directions is None else np.asarray(directions, float)
    n = int(np.ceil(2 * half_mm / spacing)) + 1
    origin = np.asarray(centre) + directions @ (np.full(3, -(n - 1) / 2 * spacing) + np.asarray(shift))
    g = ImageGeometry((n, n, n), tuple(origin), (spacing,) * 3, tuple(map(tuple, directions)))
    d = d0 + (grid_points(g) - np.asarray(centre)) @ np.asarray(gradient, float)
    return DoseGrid(d.reshape(g.shape), g, "linear")


def voxel_truth(mask: Mask, gradient, centre) -> VoxelisedTruth:
    k, j, i = np.nonzero(mask.array)
    centres = mask.geometry.ijk_to_ras_points(np.stack([i, j, k], axis=1))
    axes = mask.geometry.direction_matrix.T  # rows: RAS directions of i, j, k
    return VoxelisedTruth(centres, axes, mask.geometry.spacing, gradient, D_CENTRE, centre)


CENTRE = np.array([3.1, -12.4, 7.7])


@pytest.fixture(scope="module")
def spheres():
    return {r: sphere_mask(r, CENTRE) for r in (10.0, 3.0)}


# -- the in-box dose distribution -----------------------------------------------------------------------


def test_box_tail_truth_matches_monte_carlo():
    rng = np.random.default_rng(1)
    for a in [(0.4, 0.3, 0.2), (0.5, 0.0, 0.0), (0.5, 0.2, 0.0), (0.3, 0.3, 0.3)]:
        tail = BoxTail(a)
        s = (rng.uniform(-1, 1, (400_000, 3)) * np.asarray(a)).sum(axis=1)
        t = np.linspace(-sum(a) - 0.05, sum(a) + 0.05, 41)
        mc = (s[None, :] >= t[:, None]).mean(axis=1)
        assert np.abs(tail(t) - mc).max() < 4e-3


def test_engine_box_fraction_matches_independent_truth():
    rng = np.random.default_rng(2)
    cases = [(0.4, 0.3, 0.2), (0.5, 0.0, 0.0), (0.0, 0.7, 0.1), (0.3, 0.3, 0.3), (1.0, 1e-3, 2e-5)]
    for a in cases + [tuple(rng.uniform(0, 1, 3)) for _ in range(5)]:
        tail = BoxTail(a)
        t = np.linspace(-sum(a) - 0.1, sum(a) + 0.1, 301)
        floored = np.maximum(np.asarray(a), 1e-4 * sum(a) + 1e-9)
        ours = _fraction_at_or_above(np.zeros(len(t)), np.tile(floored, (len(t), 1)), t)
        assert np.abs(ours - tail(t)).max() < 2e-4  # the engine floors each half-width at 1e-4 of their sum


# -- exactness on voxelised spheres in linear fields ----------------------------------------------------


@pytest.mark.parametrize("radius", [10.0, 3.0])
@pytest.mark.parametrize("gradient", list(GRADIENTS))
def test_voxelised_sphere_matches_exact_truth(spheres, radius, gradient):
    """Target: within 0.05 Gy of the voxelised truth; achieved: within 0.001 Gy (asserted)."""
    mask = spheres[radius]
    g = GRADIENTS[gradient]
    dvh = compute_dvh(mask, linear_dose(g, CENTRE))
    truth = voxel_truth(mask, g, CENTRE)
    for name in METRICS + ("Dmax", "Dmin"):
        assert dvh.metric(name) == pytest.approx(truth.metric(name), abs=1e-3), name
    assert dvh.volume_cc == pytest.approx(truth.volume_cc, rel=1e-12)
    for d in (D_CENTRE - radius / 2, D_CENTRE, D_CENTRE + radius / 2):
        assert dvh.volume_at_dose_cc(d) == pytest.approx(float(truth.volume_at([d])[0]), abs=5e-5)  # floors


@pytest.mark.parametrize("radius", [10.0, 3.0])
@pytest.mark.parametrize("gradient", list(GRADIENTS))
def test_voxelised_sphere_within_voxelisation_band_of_nelms_sphere(spheres, radius, gradient):
    """The smooth-sphere formula differs from the voxelised sphere by the voxelisation; ours may not
    add more than 0.05 Gy to that difference."""
    mask = spheres[radius]
    g = GRADIENTS[gradient]
    dvh = compute_dvh(mask, linear_dose(g, CENTRE))
    truth = voxel_truth(mask, g, CENTRE)
    vol = 4 / 3 * np.pi * radius**3 / 1000

    def smooth(name):
        x = 0.03 / vol if name == "D0.03cc" else float(name[1:-1]) / 100
        lo, hi = D_CENTRE - radius, D_CENTRE + radius
        for _ in range(80):  # bisection on the Nelms sphere formula
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if sphere_fraction(mid, radius, D_CENTRE, 1.0) >= x else (lo, mid)
        return lo

    for name in ("D0.03cc", "D2%", "D50%", "D98%"):
        band = abs(truth.metric(name) - smooth(name))
        assert abs(dvh.metric(name) - smooth(name)) <= band + 0.05, (name, band)
    assert abs(dvh.metric("Dmean") - D_CENTRE) <= abs(truth.metric("Dmean") - D_CENTRE) + 0.05


def test_supersampling_does_not_change_a_linear_field(spheres):
    mask = spheres[3.0]
    dose = linear_dose(GRADIENTS["oblique"], CENTRE)
    ref = compute_dvh(mask, dose, (1, 1, 1))
    for n in [(2, 2, 2), (3, 1, 2), None]:
        dvh = compute_dvh(mask, dose, n)
        for name in METRICS + ("Dmax", "Dmin"):
            assert dvh.metric(name) == pytest.approx(ref.metric(name), abs=1e-6), (n, name)


def test_dose_grid_orientation_does_not_matter(spheres):
    """Permuted, flipped and oblique dose grids (and an LPS-like mask grid) give the same metrics."""
    g = GRADIENTS["oblique"]
    mask = spheres[10.0]
    ref = compute_dvh(mask, linear_dose(g, CENTRE))
    ref_values = [ref.metric(m) for m in METRICS + ("Dmax", "Dmin", "V30Gy", "V30Gy%")]
    permuted = ((0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    flipped = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))
    oblique = rotation((1, 2, 3), 27.0)
    doses = {
        "permuted": linear_dose(g, CENTRE, directions=permuted),
        "flipped": linear_dose(g, CENTRE, directions=flipped),
        "oblique": linear_dose(g, CENTRE, half_mm=19, directions=oblique),
        "3 mm": linear_dose(g, CENTRE, spacing=3.0, shift=(1.5, 1.5, 1.5)),
    }
    for label, dose in doses.items():
        dvh = compute_dvh(mask, dose)
        values = [dvh.metric(m) for m in METRICS + ("Dmax", "Dmin", "V30Gy", "V30Gy%")]
        np.testing.assert_allclose(values, ref_values, atol=1e-6, err_msg=label)
    lps = sphere_mask(10.0, CENTRE, directions=np.asarray(LPS_LIKE).T)
    dvh = compute_dvh(lps, linear_dose(g, CENTRE, directions=oblique, half_mm=19))
    truth = voxel_truth(lps, g, CENTRE)
    for name in METRICS:
        assert dvh.metric(name) == pytest.approx(truth.metric(name), abs=1e-3), name


def test_oblique_structure_grid_matches_its_truth():
    directions = rotation((2, -1, 1), 35.0)
    mask = sphere_mask(4.0, CENTRE, directions=directions)
    g = GRADIENTS["SI"]
    dvh = compute_dvh(mask, linear_dose(g, CENTRE))
    truth = voxel_truth(mask, g, CENTRE)
    for name in METRICS + ("Dmax", "Dmin"):
        assert dvh.metric(name) == pytest.approx(truth.metric(name), abs=1e-3), name


# -- small structures in a curved dose ------------------------------------------------------------------


def cord_prv(radius=4.5, length=40.0):
    """A cord PRV-like cylinder (axis SI) on the CT grid, about 2.5 cc."""
    g = ImageGeometry((int(length / 1.25) + 5, 21, 21), (9.8, 1.1, -length / 2 - 2.5), CT_SPACING, LPS_LIKE)
    p = grid_points(g)
    inside = (np.hypot(p[:, 0], p[:, 1] + 9.0) <= radius) & (np.abs(p[:, 2]) <= length / 2)
    return Mask(inside.reshape(g.shape), g, "SpinalCord_PRV")


def curved_dose(spacing=2.5):
    """A steep, curved SBRT-like fall-off towards the cord (about 3 Gy/mm at 20 Gy) with a hot spot."""
    n = 28
    g = ImageGeometry((n, n, n), (-33.7, -41.3, -34.1), (spacing,) * 3)
    x, y, z = grid_points(g).T
    dose = 30 / (1 + np.exp(-(y + 2.0) / 2.5)) + 6 * np.exp(-((x - 1) ** 2 + (y + 5) ** 2 + (z - 4) ** 2) / 30)
    return DoseGrid(np.maximum(dose, 0).reshape(g.shape), g, "curved")


def test_d003cc_small_structure_converged():
    """D0.03cc of a cord PRV in a curved fall-off: the automatic supersampling holds >= 200 samples in
    the hottest 0.03 cc and agrees with an 8x8x8 reference within 0.02 Gy."""
    mask = cord_prv()
    dose = curved_dose()
    assert 2.0 < mask.volume_cc < 3.5
    n = choose_supersampling(mask, dose)
    assert 0.03 / (mask.geometry.voxel_volume_cc / np.prod(n)) >= 200
    dvh = compute_dvh(mask, dose)
    ref = compute_dvh(mask, dose, (8, 8, 8))
    for name in ("D0.03cc", "D2%", "D50%", "Dmean"):
        assert dvh.metric(name) == pytest.approx(ref.metric(name), abs=0.02), name
    # an independent check of the reference: dense random points, each carrying equal volume
    rng = np.random.default_rng(3)
    k, j, i = np.nonzero(mask.array)
    ijk = np.repeat(np.stack([i, j, k], axis=1), 300, axis=0) + rng.uniform(-0.5, 0.5, (len(i) * 300, 3))
    d, _ = dose.sample(mask.geometry.ijk_to_ras_points(ijk))
    d = np.sort(d)[::-1]
    hot = d[int(round(0.03 / mask.volume_cc * len(d)))]
    assert ref.metric("D0.03cc") == pytest.approx(hot, abs=0.03)


def test_choose_supersampling_rules():
    mask = cord_prv()
    dose = curved_dose()
    n = choose_supersampling(mask, dose)
    assert all(s / k <= 1.25 + 1e-9 for s, k in zip(mask.geometry.spacing, n))
    assert choose_supersampling(mask, dose, max_samples=mask.voxel_count) == (1, 1, 1)
    assert choose_supersampling(mask, None, max_step_mm=0.25, min_hot_samples=1) == (4, 4, 5)


# -- metric definitions ---------------------------------------------------------------------------------


def test_metric_names():
    assert [parse_metric(m).kind for m in ("D2%", "D50%", "D90%", "D98%", "D0.03cc")] == ["D"] * 5
    assert parse_metric("D0.03cc").value == 0.03 and not parse_metric("D0.03cc").relative
    assert parse_metric("V30Gy").unit == "cc" and parse_metric("V30Gy%").unit == "%"
    assert [parse_metric(m).kind for m in ("Dmean", "Dmax", "Dmin", "Volume")] == ["Dmean", "Dmax", "Dmin", "Volume"]
    with pytest.raises(ValueError):
        parse_metric("D2")


def test_point_samples_keep_their_definitions():
    """Without spreads, samples are points: Dx is the dose of the sample where the running volume from
    the top first reaches x."""
    dvh = DVH("pts", np.array([30.0, 20.0, 10.0]), np.array([1.0, 2.0, 3.0]), 3.0, 0.0)
    assert dvh.dose_at_volume_cc(0.5) == pytest.approx(30.0, abs=1e-6)
    assert dvh.dose_at_volume_cc(1.0) == pytest.approx(30.0, abs=1e-6)
    assert dvh.dose_at_volume_cc(1.5) == pytest.approx(20.0, abs=1e-6)
    assert dvh.metric("D100%") == pytest.approx(10.0, abs=1e-6)
    assert dvh.metric("D0%") == pytest.approx(30.0, abs=1e-6)
    assert dvh.metric("V20Gy") == pytest.approx(2.0, abs=1e-6)
    assert dvh.metric("V20Gy%") == pytest.approx(200 / 3, abs=1e-4)
    assert dvh.metric("Dmean") == pytest.approx(20.0)
    with pytest.raises(DoseError):
        dvh.metric("D3.5cc")
    with pytest.raises(DoseError):
        dvh.dose_at_volume_percent(101)


def test_spread_sample_is_uniform_over_its_range():
    """One box in a gradient along one edge: its volume is spread evenly over [d - a, d + a]."""
    dvh = DVH("box", np.array([20.0]), np.array([1.0]), 1.0, 0.0, spreads=np.array([[0.5, 0.0, 0.0]]))
    assert dvh.metric("Dmax") == pytest.approx(20.5, abs=1e-3)
    assert dvh.metric("Dmin") == pytest.approx(19.5, abs=1e-3)
    for x in (10, 25, 50, 90):
        assert dvh.metric(f"D{x}%") == pytest.approx(20.5 - x / 100, abs=2e-4)
    assert dvh.metric("V20.25Gy%") == pytest.approx(25.0, abs=0.02)


def test_curve_is_the_exact_cumulative_dvh(spheres):
    dvh = compute_dvh(spheres[3.0], linear_dose(GRADIENTS["oblique"], CENTRE))
    levels, percent = dvh.curve(0.1)
    assert levels[0] == 0 and percent[0] == pytest.approx(100.0)
    assert percent[-1] == 0 and levels[-1] >= dvh.metric("Dmax")
    assert np.all(np.diff(percent) <= 1e-9)
    picks = [0, len(levels) // 3, len(levels) // 2, len(levels) - 2]
    exact = [100 * dvh.volume_at_dose_cc(levels[p]) / dvh.evaluated_volume_cc for p in picks]
    np.testing.assert_allclose(percent[picks], exact, atol=1e-9)


# -- errors and warnings --------------------------------------------------------------------------------


def box_mask(lo, hi, name="box"):
    g = ImageGeometry((40, 40, 40), (-20.0, -20.0, -20.0), (1.0, 1.0, 1.0))
    p = grid_points(g)
    inside = np.all((p >= np.asarray(lo)) & (p <= np.asarray(hi)), axis=1)
    return Mask(inside.reshape(g.shape), g, name)


def test_partly_outside_warns_with_the_fraction():
    dose_geo = ImageGeometry((10, 10, 10), (-4.5, -4.5, -4.5), (1.0, 1.0, 1.0))  # cubes cover [-5, 5]
    dose = DoseGrid(np.full(dose_geo.shape, 20.0), dose_geo, "RTDOSE")
    mask = box_mask((-4, -4, -4), (5, 4, 4), "GTV")  # x from -4.5 to 5.5: 0.5 mm of 10 lies beyond x = 5
    with pytest.warns(DoseWarning, match=r"5\.00% of GTV lies outside the dose grid RTDOSE"):
        dvh = compute_dvh(mask, dose, (2, 2, 2))
    assert dvh.fraction_outside == pytest.approx(0.05, abs=1e-9)
    assert dvh.volume_cc == pytest.approx(mask.volume_cc)
    assert dvh.evaluated_volume_cc == pytest.approx(0.95 * mask.volume_cc)
    assert dvh.metric("D50%") == pytest.approx(20.0, abs=1e-6)


def test_inside_gives_no_warning():
    dose_geo = ImageGeometry((10, 10, 10), (-4.5, -4.5, -4.5), (1.0, 1.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_dvh(box_mask((-3, -3, -3), (3, 3, 3)), DoseGrid(np.full(dose_geo.shape, 2.0), dose_geo))


def test_entirely_outside_is_an_error_naming_both():
    dose_geo = ImageGeometry((10, 10, 10), (100.0, 100.0, 100.0), (1.0, 1.0, 1.0))
    dose = DoseGrid(np.full(dose_geo.shape, 20.0), dose_geo, "RTDOSE")
    with pytest.raises(DoseError, match=r"(?s)Structure GTV lies entirely outside the dose grid RTDOSE.*frame of"):
        compute_dvh(box_mask((-4, -4, -4), (4, 4, 4), "GTV"), dose)


def test_empty_structure_is_an_error():
    dose_geo = ImageGeometry((10, 10, 10), (-4.5, -4.5, -4.5), (1.0, 1.0, 1.0))
    with pytest.raises(DoseError, match="CordPRV is empty"):
        compute_dvh(box_mask((50, 50, 50), (60, 60, 60), "CordPRV"), DoseGrid(np.ones(dose_geo.shape), dose_geo))


def test_dose_errors_are_named():
    geo = ImageGeometry((2, 2, 2), (0, 0, 0), (1, 1, 1))
    bad = np.ones(geo.shape)
    bad[0, 0, 0] = np.nan
    with pytest.raises(DoseError, match="NaN or infinite"):
        DoseGrid(bad, geo)
    with pytest.raises(DoseError, match="negative"):
        DoseGrid(-np.ones(geo.shape), geo)
    for unit in (None, "", "  "):
        with pytest.raises(DoseError, match="has no unit"):
            DoseGrid.from_array(np.ones(geo.shape), geo, unit)
    with pytest.raises(DoseError, match="not a physical dose unit"):
        DoseGrid.from_array(np.ones(geo.shape), geo, "RELATIVE")
    assert DoseGrid.from_array(np.full(geo.shape, 250.0), geo, "cGy").max_gy == pytest.approx(2.5)
    assert set(DOSE_UNITS_TO_GY) == {"GY", "CGY"}
    with pytest.raises(DoseError, match="shape"):
        DoseGrid(np.ones((3, 2, 2)), geo)
    assert DoseGrid(np.ones(geo.shape), geo).scaled(3.0).max_gy == pytest.approx(3.0)


def test_sample_and_gradient_of_a_linear_field_on_an_oblique_grid():
    rot = rotation((1, 1, 0), 40)
    g = np.array([0.3, -1.2, 0.8])
    dose = linear_dose(g, CENTRE, spacing=2.0, half_mm=10, directions=rot, d0=40.0)
    rng = np.random.default_rng(4)
    pts = CENTRE + rng.uniform(-6, 6, (200, 3))
    d, grad, inside = dose.sample_with_gradient(pts)
    assert inside.all()
    np.testing.assert_allclose(d, 40.0 + (pts - CENTRE) @ g, atol=1e-9)
    np.testing.assert_allclose(grad, np.tile(g, (200, 1)), atol=1e-9)
    d2, inside2 = dose.sample(pts)
    np.testing.assert_allclose(d2, d)
    # in the outer half voxel the field is constant along that axis
    far = np.asarray(dose.geometry.ijk_to_ras_points(np.array([[-0.3, 4.0, 4.0]])))
    _, grad_far, inside_far = dose.sample_with_gradient(far)
    ijk_grad = rot.T @ grad_far[0] * 2.0
    assert inside_far[0] and abs(ijk_grad[0]) < 1e-9


def test_single_slice_dose_grid_is_constant_across_its_slab():
    geo = ImageGeometry((1, 4, 4), (-1.5, -1.5, 0.0), (1.0, 1.0, 3.0))
    x = grid_points(geo)[:, 0].reshape(geo.shape)
    dose = DoseGrid(10 + x, geo)
    d, grad, inside = dose.sample_with_gradient(np.array([[0.2, 0.1, 1.0], [0.2, 0.1, -1.4]]))
    np.testing.assert_allclose(d, [10.2, 10.2])
    np.testing.assert_allclose(grad[:, 2], 0.0)
    assert inside.all()


# -- speed ----------------------------------------------------------------------------------------------


def test_speed_70cc_ptv_eval_and_a_case():
    """A 70 cc PTV_Eval on 0.98 x 0.98 x 1.25 mm with a 2.5 mm dose: well under 1 s on a free core
    (asserted < 2 s to tolerate a loaded machine); six structures of a case under 2 s (asserted < 4 s)."""
    g = ImageGeometry((64, 80, 80), (-38.7, -39.2, -40.0), CT_SPACING)
    p = grid_points(g)
    ell = ((p[:, 0] / 30) ** 2 + (p[:, 1] / 22) ** 2 + (p[:, 2] / 26) ** 2 <= 1).reshape(g.shape)
    ptv = Mask(ell, g, "PTV_Eval")
    assert 65 < ptv.volume_cc < 75
    dg = ImageGeometry((36, 36, 36), (-43.3, -44.1, -45.6), (2.5, 2.5, 2.5))
    x, y, z = grid_points(dg).T
    dose = DoseGrid(np.maximum(0, 36 - 0.01 * (x**2 + 2 * y**2 + z**2) + 3 * np.sin(x / 7)).reshape(dg.shape), dg)
    start = time.perf_counter()
    dvh = compute_dvh(ptv, dose)
    values = [dvh.metric(m) for m in ("D2%", "D50%", "D90%", "D98%", "Dmean", "V30Gy%")]
    elapsed = time.perf_counter() - start
    assert np.all(np.isfinite(values))
    assert elapsed < 2.0, f"70 cc PTV_Eval took {elapsed:.2f} s"
    others = [
        Mask(ell & (p[:, 1] > 0).reshape(g.shape), g, "GTV"),
        Mask(ell & (p[:, 0] > 5).reshape(g.shape), g, "CTV"),
        Mask((np.hypot(p[:, 0], p[:, 1] + 30) <= 5).reshape(g.shape), g, "PRV"),
        Mask((np.hypot(p[:, 0], p[:, 1] + 30) <= 7).reshape(g.shape), g, "ThecalSac"),
        Mask((np.hypot(p[:, 0] - 15, p[:, 1] - 30) <= 8).reshape(g.shape), g, "Esophagus"),
    ]
    start = time.perf_counter()
    for m in [ptv] + others:
        d = compute_dvh(m, dose)
        [d.metric(x) for x in ("D0.03cc", "D2%", "D50%", "D90%", "D98%", "Dmean")]
    elapsed = time.perf_counter() - start
    assert elapsed < 4.0, f"six structures took {elapsed:.2f} s"


def test_mask_boxes_cover_each_voxel_once():
    mask = sphere_mask(2.0, CENTRE)
    dose = linear_dose(GRADIENTS["AP"], CENTRE)
    chunks = list(_mask_boxes(mask, dose, (2, 3, 1)))
    assert len(chunks) == 6
    total = sum(np.broadcast_to(v, (len(c),)).sum() for c, _, _, v in chunks)
    assert total == pytest.approx(mask.volume_cc, rel=1e-12)


# -- adaptive sampling (cut on the dose grid's planes, tails refined) ------------------------------------


def exact_trilinear(mask: Mask, dose: DoseGrid):
    """(max, min, mean) of the trilinear dose over the part of a labelmap inside the dose grid, exactly, for
    parallel grids and voxels at most one dose step wide: each voxel is cut on the dose planes it straddles;
    on each part (inside one dose cell) the dose is multilinear, so its mean is the value at the part's
    centre and its extremes are at the part's corners."""
    m = dose.geometry.ras_to_ijk @ mask.geometry.ijk_to_ras
    assert np.all((np.abs(m[:3, :3]) > 1e-9).sum(axis=1) == 1)
    k, j, i = np.nonzero(mask.array)
    centres = np.stack([i, j, k], axis=1) @ m[:3, :3].T + m[:3, 3]
    half = 0.5 * np.abs(m[:3, :3]).sum(axis=1)
    assert np.all(half <= 0.5)
    nk, nj, ni = dose.geometry.shape
    last = np.array([ni - 1, nj - 1, nk - 1])
    lo, hi = np.clip(centres - half, -0.5, last + 0.5), np.clip(centres + half, -0.5, last + 0.5)
    plane = np.floor(lo) + 1
    plane = np.where((plane < hi) & (plane <= last), plane, hi)  # a plane strictly inside, or none (hi)
    bounds = np.stack([lo, plane, hi], axis=2)  # per axis: parts [lo, plane] and [plane, hi]
    top, bottom, integral, volume = -np.inf, np.inf, 0.0, 0.0
    for parts in np.ndindex(2, 2, 2):
        a = np.stack([bounds[:, ax, p] for ax, p in enumerate(parts)], axis=1)
        b = np.stack([bounds[:, ax, p + 1] for ax, p in enumerate(parts)], axis=1)
        size = np.prod(np.maximum(b - a, 0.0), axis=1)
        keep = size > 0
        a, b, size = a[keep], b[keep], size[keep]
        mid, _, _ = dose.interpolate_index(0.5 * (a + b))
        integral += float(size @ mid)
        volume += float(size.sum())
        for corner in np.ndindex(2, 2, 2):
            d, _, _ = dose.interpolate_index(np.where(np.array(corner) == 1, b, a))
            top, bottom = max(top, float(d.max())), min(bottom, float(d.min()))
    return top, bottom, integral / volume


def test_adaptive_sampling_is_exact_where_it_matters_in_a_curved_dose():
    """Cord PRV in the steep curved dose: Dmean is the exact integral of the trilinear dose, Dmax and Dmin
    are within 0.02 Gy of its exact extremes (the tails' cross terms are bounded by 0.02 Gy), and Dx agree
    with an 8x8x8 reference within 0.005 Gy (about ten times closer than the former 2x2x3 sub-cubes)."""
    mask, dose = cord_prv(), curved_dose()
    dvh = compute_dvh(mask, dose)
    top, bottom, mean = exact_trilinear(mask, dose)
    assert dvh.metric("Dmean") == pytest.approx(mean, abs=1e-9)
    assert dvh.metric("Dmax") == pytest.approx(top, abs=0.02)
    assert dvh.metric("Dmin") == pytest.approx(bottom, abs=0.02)
    ref = compute_dvh(mask, dose, (8, 8, 8))
    for name in ("D0.03cc", "D2%", "D50%", "D98%"):
        assert dvh.metric(name) == pytest.approx(ref.metric(name), abs=0.005), name


def test_adaptive_sampling_in_a_linear_field_is_one_box_per_voxel(spheres):
    mask = spheres[10.0]
    dvh = compute_dvh(mask, linear_dose(GRADIENTS["oblique"], CENTRE))
    assert len(dvh.doses) == mask.voxel_count  # the dose grid covers the sphere: nothing to cut


def test_adaptive_sampling_cuts_on_the_grid_faces():
    """The part outside the dose grid is exact (the boxes are cut on the grid's faces), and the metrics
    cover the part inside."""
    dose_geo = ImageGeometry((10, 10, 10), (-4.5, -4.5, -4.5), (1.0, 1.0, 1.0))  # cubes cover [-5, 5]
    x = grid_points(dose_geo)[:, 0].reshape(dose_geo.shape)
    dose = DoseGrid(20.0 + x, dose_geo, "RTDOSE")
    mask = box_mask((-4, -4, -4), (5, 4, 4), "GTV")  # x from -4.5 to 5.5: 0.5 mm of 10 lies beyond x = 5
    with pytest.warns(DoseWarning, match=r"5\.00% of GTV lies outside"):
        dvh = compute_dvh(mask, dose)
    assert dvh.fraction_outside == pytest.approx(0.05, abs=1e-12)
    assert dvh.metric("Dmax") == pytest.approx(24.5, abs=1e-8)  # the field is constant beyond x = 4.5
    assert dvh.metric("Dmin") == pytest.approx(15.5, abs=1e-8)


def test_adaptive_sampling_on_oblique_grids_in_a_curved_dose():
    """Boxes oblique to the dose grid are halved instead of cut: still within 0.02 Gy of an 8x8x8 reference."""
    directions = rotation((2, -1, 1), 35.0)
    mask = sphere_mask(4.0, np.array([1.0, -6.0, 2.0]), directions=directions)
    dose = curved_dose()
    dvh = compute_dvh(mask, dose)
    ref = compute_dvh(mask, dose, (8, 8, 8))
    for name in ("D0.03cc", "D2%", "D50%", "D98%", "Dmean"):
        assert dvh.metric(name) == pytest.approx(ref.metric(name), abs=0.02), name


def test_metrics_together_match_one_by_one(spheres):
    dvh = compute_dvh(spheres[3.0], curved_dose())
    names = ["D0.03cc", "D2%", "D50%", "D98%", "D100%", "D0%", "Dmean", "Dmax", "Dmin", "V20Gy", "V20Gy%", "Volume"]
    together = dvh.metrics(names)
    fresh = compute_dvh(spheres[3.0], curved_dose())  # no cached Dx
    for name in names:
        assert together[name] == pytest.approx(fresh.metric(name), abs=1e-9), name
    cc = [0.001, 0.01, 0.05, dvh.evaluated_volume_cc / 2]
    np.testing.assert_allclose(dvh.doses_at_volumes_cc(cc), [fresh.dose_at_volume_cc(v) for v in cc], atol=1e-9)
    with pytest.raises(DoseError):
        dvh.metrics(["D50%", "D101%"])


def test_dose_grid_bends_match_a_brute_force():
    """``DoseGrid.bends``: per-cell cross terms and the largest bend over a region, against plain loops."""
    rng = np.random.default_rng(7)
    for _ in range(60):
        shape = tuple(int(v) for v in rng.integers(1, 6, 3))
        dose = DoseGrid(rng.uniform(0, 10, shape), ImageGeometry(shape, (0, 0, 0), (1, 1, 1)))
        n = np.array(shape[::-1])
        a, b = rng.uniform(-0.5, n - 0.5), rng.uniform(-0.5, n - 0.5)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        bends = dose.bends(lo, hi)
        t = dose._table.reshape(dose._table_shape)  # single slices repeated
        tn = np.array(t.shape[::-1])
        c_lo, c_hi = np.clip(np.floor(lo).astype(int), 0, tn - 2), np.clip(np.floor(hi).astype(int), 0, tn - 2)
        largest = 0.0
        for ck in range(c_lo[2], c_hi[2] + 1):
            for cj in range(c_lo[1], c_hi[1] + 1):
                for ci in range(c_lo[0], c_hi[0] + 1):
                    c = t[ck : ck + 2, cj : cj + 2, ci : ci + 2]
                    cross = max(
                        np.abs(c[:, 1, 1] - c[:, 1, 0] - c[:, 0, 1] + c[:, 0, 0]).max(),
                        np.abs(c[1, :, 1] - c[1, :, 0] - c[0, :, 1] + c[0, :, 0]).max(),
                        np.abs(c[1, 1, :] - c[1, 0, :] - c[0, 1, :] + c[0, 0, :]).max(),
                    )
                    assert bends.cross[ck - c_lo[2], cj - c_lo[1], ci - c_lo[0]] == pytest.approx(cross)
                    largest = max(largest, cross)
        padded = np.pad(t, 1, mode="edge")  # the outermost planes bend towards the constant outer half voxel
        for axis in range(3):
            for p in range(n[axis]):
                inner = 0 < p < n[axis] - 1 or (p == 0 and lo[axis] < 0) or (p == n[axis] - 1 and hi[axis] > p)
                if lo[axis] < p < hi[axis] and inner:
                    idx = [slice(c_lo[2 - x] + 1, c_hi[2 - x] + 3) for x in range(3)]
                    idx[2 - axis] = slice(p, p + 3)
                    largest = max(largest, np.abs(np.diff(padded[tuple(idx)], n=2, axis=2 - axis)).max())
        assert bends.largest == pytest.approx(largest, abs=1e-12)
