"""Exact margins: checked against truths computed here, independently of the library.

* Brute force of the exactness rule: for every voxel centre, the distance to every source voxel's cube
  (clamping on axis-aligned grids; faces and edges of a parallelepiped on oblique grids; dense surface
  sampling with a certified error band for asymmetric margins on oblique grids).
* Analytic Minkowski volumes of a box, a sphere and a finite cylinder (Steiner's formula).
* Slicer's own margin filter and a scipy EDT on the mask, which measure between voxel centres.
"""

import itertools
import math
import warnings

import numpy as np
import pytest
from analytic_geometry import ball, integrated_box, integrated_cylinder, steiner_box, steiner_cylinder
from margin_baselines import slicer_margin_effect

from SIBSpineSBRTLib.geometry import margins as margins_module
from SIBSpineSBRTLib.geometry.grid import ImageGeometry
from SIBSpineSBRTLib.geometry.margins import Margins, expand, footprint, shrink
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.warnings import GeometryWarning

CT_SPACING = (0.98, 0.98, 1.25)
TOL = 1e-9


# -- helpers -------------------------------------------------------------------------------------------


def rotation(axis, degrees):
    """Rotation matrix about RAS axis 0 (R), 1 (A) or 2 (S)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    a, b = [x for x in range(3) if x != axis]
    m = np.eye(3)
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


OBLIQUE = rotation(2, 20) @ rotation(0, 10)  # 20 degrees about S, then 10 about R
PERMUTED = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # i -> S, j -> R, k -> A
LPS_LIKE = np.diag([-1.0, -1.0, 1.0])


def grid(shape, spacing=CT_SPACING, directions=None, origin=(0.0, 0.0, 0.0)):
    d = np.eye(3) if directions is None else np.asarray(directions)
    return ImageGeometry(tuple(shape), tuple(origin), tuple(spacing), tuple(map(tuple, d)))


def step_matrix(geometry):
    """Columns: the RAS mm step of one voxel along i, j, k."""
    return geometry.direction_matrix * np.asarray(geometry.spacing)


def radii(margins, d):
    """Per patient axis, the margin used for a step d (RAS mm) from region point to voxel centre."""
    pos = np.array([margins.R, margins.A, margins.S])
    neg = np.array([margins.L, margins.P, margins.I])
    return np.where(d > 0, pos, neg)


def normalised_sq(d, margins):
    """sum((d_a / r_a)^2) with the margin of the side d points to; a zero margin admits no step."""
    r = radii(margins, d)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d == 0, 0.0, np.where(r > 0, (d / np.where(r > 0, r, 1.0)) ** 2, np.inf))
    return terms.sum(axis=-1)


def ijk(indices_kji):
    return np.asarray(indices_kji, dtype=float)[:, ::-1]


def brute_reach_aligned(targets_ijk, sources_ijk, geometry, margins):
    """For each target centre: is a point of any source cube within reach? (Axis-aligned grids: the
    nearest point of a cube is the clamp, axis by axis, also for the asymmetric metric.)"""
    p = step_matrix(geometry)
    out = np.zeros(len(targets_ijk), dtype=bool)
    chunk = max(1, 200_000 // max(len(sources_ijk), 1))
    for c in range(0, len(targets_ijk), chunk):
        t = targets_ijk[c : c + chunk, None, :]
        nearest = np.clip(t, sources_ijk[None] - 0.5, sources_ijk[None] + 0.5)
        d = (t - nearest) @ p.T
        d = np.where(np.abs(d) < 1e-12, 0.0, d)  # 0 * (-1) and friends
        out[c : c + chunk] = (normalised_sq(d, margins) <= 1 + TOL).any(axis=1)
    return out


def brute_expand_aligned(arr, geometry, margins):
    targets = ijk(np.argwhere(np.ones(arr.shape, bool)))
    return brute_reach_aligned(targets, ijk(np.argwhere(arr)), geometry, margins).reshape(arr.shape)


def brute_shrink_aligned(arr, geometry, margins):
    """Keep a voxel iff no point of the outside region (outside voxels, the grid continued beyond its
    edge as outside) lies within reach, the margin taken on the side of the voxel the point lies on."""
    pad = int(max(margins.as_tuple()) / min(geometry.spacing)) + 2  # farther voxels cannot reach
    padded = np.pad(arr, pad, constant_values=False)
    outside = ijk(np.argwhere(~padded)) - pad
    inside = ijk(np.argwhere(arr))
    lo, hi = inside.min(axis=0) - pad, inside.max(axis=0) + pad
    outside = outside[np.all((outside >= lo) & (outside <= hi), axis=1)]
    # a point y on the S side of voxel x removes it when S reaches: the step y - x uses the margin S,
    # i.e. the step x - y uses the mirrored margins.
    mirrored = Margins(margins.L, margins.R, margins.P, margins.A, margins.I, margins.S)
    lost = brute_reach_aligned(inside, outside, geometry, mirrored)
    out = np.zeros(arr.shape, bool)
    keep = inside[~lost].astype(int)
    out[keep[:, 2], keep[:, 1], keep[:, 0]] = True
    return out


def parallelepiped_distance(points, edges):
    """Euclidean distance from points (N, 3) to the parallelepiped {edges @ u : |u_b| <= 1/2}.

    Outside it, the nearest point lies on a face: the orthogonal projection onto the face plane when
    that falls inside the face, else on one of the face's edges (clamped)."""
    u0 = np.linalg.solve(edges, points.T).T
    best = np.where(np.all(np.abs(u0) <= 0.5 + 1e-12, axis=1), 0.0, np.inf)
    for b in range(3):
        c1, c2 = [x for x in range(3) if x != b]
        plane = edges[:, [c1, c2]]
        for side in (-0.5, 0.5):
            rel = points - side * edges[:, b]
            t, *_ = np.linalg.lstsq(plane, rel.T, rcond=None)
            inside_face = np.all(np.abs(t) <= 0.5, axis=0)
            dist = np.linalg.norm(rel - (plane @ t).T, axis=1)
            best = np.where(inside_face, np.minimum(best, dist), best)
            for free, fixed in ((c1, c2), (c2, c1)):
                for fixed_side in (-0.5, 0.5):
                    base = side * edges[:, b] + fixed_side * edges[:, fixed]
                    a = edges[:, free]
                    s = np.clip((points - base) @ a / (a @ a), -0.5, 0.5)
                    best = np.minimum(best, np.linalg.norm(points - base - s[:, None] * a, axis=1))
    return best


def any_pair_within(targets_ijk, sources_ijk, offset_ok, reach):
    """For each target: is there a source whose offset (target - source) is marked in ``offset_ok``, a
    table over offsets -reach..reach (index order i, j, k)?"""
    out = np.zeros(len(targets_ijk), dtype=bool)
    chunk = max(1, 200_000 // max(len(sources_ijk), 1))
    for c in range(0, len(targets_ijk), chunk):
        w = (targets_ijk[c : c + chunk, None, :] - sources_ijk[None]).astype(int)
        near = np.all(np.abs(w) <= reach, axis=-1)
        wi = np.where(near[..., None], w + reach, 0)
        out[c : c + chunk] = (near & offset_ok[wi[..., 0], wi[..., 1], wi[..., 2]]).any(axis=1)
    return out


def oblique_symmetric_table(geometry, margins):
    """Per integer offset: is the centre within reach of the cube? Exact for per-axis symmetric, non-zero
    margins on any grid: scaled by 1/r, the margin is the unit ball and the cube a parallelepiped."""
    assert margins.is_symmetric and min(margins.as_tuple()) > 0
    scale = np.diag(1.0 / np.array([margins.R, margins.A, margins.S]))
    edges = scale @ step_matrix(geometry)
    reach = int(max(margins.as_tuple()) / min(geometry.spacing)) + 2
    r = np.arange(-reach, reach + 1)
    w = np.stack([g.ravel() for g in np.meshgrid(r, r, r, indexing="ij")], axis=1).astype(float)
    ok = parallelepiped_distance(w @ edges.T, edges) <= 1 + TOL
    return ok.reshape((2 * reach + 1,) * 3), reach


def brute_expand_oblique_symmetric(arr, geometry, margins):
    table, reach = oblique_symmetric_table(geometry, margins)
    targets = ijk(np.argwhere(np.ones(arr.shape, bool)))
    return any_pair_within(targets, ijk(np.argwhere(arr)), table, reach).reshape(arr.shape)


def random_mask(shape, rng, n_points=25, blobs=2):
    """Scattered voxels plus small blobs in the middle third of the grid."""
    arr = np.zeros(shape, bool)
    lo = [n // 3 for n in shape]
    hi = [n - n // 3 for n in shape]
    for _ in range(n_points):
        arr[tuple(rng.integers(a, b) for a, b in zip(lo, hi))] = True
    idx = np.indices(shape)
    for _ in range(blobs):
        c = [rng.uniform(a, b) for a, b in zip(lo, hi)]
        r = rng.uniform(0.8, 2.2, size=3)
        arr |= sum(((i - ci) / ri) ** 2 for i, ci, ri in zip(idx, c, r)) <= 1
    return arr


def centres_ras(mask):
    k, j, i = np.nonzero(mask.array)
    return mask.geometry.ijk_to_ras_points(np.stack([i, j, k], axis=1).astype(float))


def cord_mask(offset=(0.25, 0.1)):
    """Cord: cylinder of radius 5 mm, 80 mm long (64 slices of 1.25 mm) along S, axis at a generic
    position relative to the voxel lattice."""
    shape = (72, 24, 24)
    k, j, i = np.indices(shape)
    x = (i - 11.5 - offset[0]) * CT_SPACING[0]
    y = (j - 11.5 - offset[1]) * CT_SPACING[1]
    z = (k - 35.5) * CT_SPACING[2]
    return Mask((x**2 + y**2 <= 25.0) & (np.abs(z) <= 40.0), grid(shape), "SpinalCord")


# -- Margins -------------------------------------------------------------------------------------------


def test_margins_parse_and_describe():
    assert Margins.parse("2") == Margins.isotropic(2)
    assert Margins.parse("2, 2, 5") == Margins.axial_si(2, 5)
    assert Margins.parse("1,2,3,4,5,6").as_tuple() == (1, 2, 3, 4, 5, 6)
    assert Margins.axial_si(2, 5).describe() == "2 mm axial, 5 mm SI"
    assert Margins.isotropic(0).is_zero and not Margins.axial_si(2, 5).is_zero
    assert not Margins(1, 2, 1, 1, 1, 1).is_symmetric
    for bad in ("a", "1,2", "-1"):
        with pytest.raises(ValueError):
            Margins.parse(bad)


# -- exactness against brute force ------------------------------------------------------------------------

ALIGNED_CASES = [
    # spacing (si, sj, sk), directions, margins
    (CT_SPACING, np.eye(3), Margins.axial_si(2, 5)),
    (CT_SPACING, np.eye(3), Margins.isotropic(2)),
    (CT_SPACING, np.eye(3), Margins(1, 3, 0, 2.5, 5, 0)),
    (CT_SPACING, LPS_LIKE, Margins(1, 3, 0, 2.5, 5, 0)),
    (CT_SPACING, PERMUTED, Margins(2, 0, 1.5, 4, 0.5, 3)),
    ((1.0, 1.0, 1.0), np.eye(3), Margins.isotropic(2.5)),  # ties: centres exactly 2.5 mm from a cube face
    ((1.0, 1.0, 1.0), np.eye(3), Margins(0, 0, 0, 0, 3, 0)),
    ((0.6, 1.1, 2.0), LPS_LIKE @ PERMUTED, Margins(3, 1, 2, 0, 2.5, 3)),
    ((1.25, 0.7, 0.98), -PERMUTED.T, Margins(0.3, 0.3, 2, 2, 0, 1)),  # margins below half a voxel
]


@pytest.mark.parametrize("spacing, directions, margins", ALIGNED_CASES)
def test_expand_matches_brute_force_on_aligned_grids(spacing, directions, margins):
    rng = np.random.default_rng(17)
    shape = (22, 22, 22)
    for _ in range(2):
        mask = Mask(random_mask(shape, rng), grid(shape, spacing, directions))
        with warnings.catch_warnings():
            warnings.simplefilter("error", GeometryWarning)  # the grid has room: nothing is clipped
            got = expand(mask, margins)
        truth = brute_expand_aligned(mask.array, mask.geometry, margins)
        assert np.array_equal(got.array, truth), f"{np.count_nonzero(got.array != truth)} voxels differ"
        assert np.all(got.array[mask.array])


@pytest.mark.parametrize("spacing, directions, margins", ALIGNED_CASES[::2])
def test_shrink_matches_brute_force_on_aligned_grids(spacing, directions, margins):
    rng = np.random.default_rng(7)
    shape = (16, 16, 16)
    idx = np.indices(shape)
    arr = np.zeros(shape, bool)
    for _ in range(3):  # overlapping ellipsoids: thick enough to keep a core
        c = rng.uniform(5, 11, size=3)
        r = rng.uniform(3, 6, size=3)
        arr |= sum(((i - ci) / ri) ** 2 for i, ci, ri in zip(idx, c, r)) <= 1
    arr[0, 0, 0] = True  # a voxel at the grid corner: beyond the grid counts as outside
    mask = Mask(arr, grid(shape, spacing, directions))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        got = shrink(mask, margins)
    truth = brute_shrink_aligned(arr, mask.geometry, margins)
    assert np.array_equal(got.array, truth), f"{np.count_nonzero(got.array != truth)} voxels differ"
    assert 0 < got.voxel_count < mask.voxel_count


@pytest.mark.parametrize("margins", [Margins.axial_si(2, 5), Margins.isotropic(2), Margins(1.5, 1.5, 2.5, 2.5, 1, 1)])
def test_expand_matches_brute_force_on_oblique_grid(margins):
    rng = np.random.default_rng(11)
    shape = (20, 20, 20)
    mask = Mask(random_mask(shape, rng, n_points=15), grid(shape, directions=OBLIQUE, origin=(5, -3, 2)))
    got = expand(mask, margins)
    truth = brute_expand_oblique_symmetric(mask.array, mask.geometry, margins)
    assert np.array_equal(got.array, truth), f"{np.count_nonzero(got.array != truth)} voxels differ"


def test_shrink_matches_brute_force_on_oblique_grid():
    # shrink = complement of the expansion of the complement (a symmetric margin mirrors to itself)
    margins = Margins.axial_si(1.5, 2.5)
    shape = (18, 18, 18)
    idx = np.indices(shape)
    arr = sum(((i - 8.7) / r) ** 2 for i, r in zip(idx, (5.5, 6.5, 5))) <= 1
    mask = Mask(arr, grid(shape, directions=rotation(0, 35) @ rotation(1, -25)))
    table, reach = oblique_symmetric_table(mask.geometry, margins)
    outside = ijk(np.argwhere(~np.pad(arr, reach, constant_values=False))) - reach  # beyond the grid too
    inside = ijk(np.argwhere(arr))
    reached = np.zeros(shape, bool)
    hit = inside[any_pair_within(inside, outside, table, reach)].astype(int)
    reached[hit[:, 2], hit[:, 1], hit[:, 0]] = True
    got = shrink(mask, margins)
    assert np.array_equal(got.array, arr & ~reached)
    assert 0 < got.voxel_count < mask.voxel_count


def test_asymmetric_margins_on_oblique_grid_against_sampled_cubes():
    """Sample each cube's surface densely: the sampled minimum bounds the true one from above, and from
    below within the sampling step times the metric's Lipschitz constant. Voxels outside that band are
    decided; the library must agree on every one of them."""
    margins = Margins(1.0, 2.5, 2.0, 1.2, 5.0, 1.5)
    geometry = grid((20, 20, 20), directions=OBLIQUE)
    rng = np.random.default_rng(5)
    arr = random_mask(geometry.shape, rng, n_points=10, blobs=1)
    got = expand(Mask(arr, geometry), margins).array

    n = 25
    t = np.linspace(-0.5, 0.5, n)
    a, b = [g.ravel() for g in np.meshgrid(t, t, indexing="ij")]
    surface = []
    for axis in range(3):
        for side in (-0.5, 0.5):
            u = np.empty((a.size, 3))
            u[:, axis] = side
            u[:, [x for x in range(3) if x != axis]] = np.stack([a, b], axis=1)
            surface.append(u)
    surface = np.concatenate(surface)
    step_mm = 0.5 * math.hypot(*sorted(CT_SPACING)[1:]) / (n - 1)  # farthest any surface point is from a sample
    slack = step_mm / min(margins.as_tuple())

    p = step_matrix(geometry)
    targets = ijk(np.argwhere(np.ones(arr.shape, bool)))
    sources = ijk(np.argwhere(arr))
    offsets = (targets[:, None, :] - sources[None]).reshape(-1, 3)
    uniq, inverse = np.unique(offsets, axis=0, return_inverse=True)
    gauge = np.full(len(uniq), np.inf)
    candidates = np.flatnonzero(np.abs(uniq @ p.T).max(axis=1) <= max(margins.as_tuple()) + 2.0)
    for c in range(0, len(candidates), 64):
        sel = candidates[c : c + 64]
        d = (uniq[sel][:, None, :] - surface[None]) @ p.T
        gauge[sel] = np.sqrt(normalised_sq(d, margins).min(axis=1))
    gauge[np.all(uniq == 0, axis=1)] = 0.0
    surely_in = (gauge <= 1.0)[inverse.ravel()].reshape(len(targets), -1).any(axis=1).reshape(arr.shape)
    maybe_in = (gauge - slack <= 1.0)[inverse.ravel()].reshape(len(targets), -1).any(axis=1).reshape(arr.shape)
    assert np.all(got[surely_in])
    assert not np.any(got[~maybe_in])
    assert np.count_nonzero(maybe_in & ~surely_in) < 0.05 * np.count_nonzero(got & ~arr)


def test_oblique_solver_reproduces_the_clamp_footprint_on_aligned_grids():
    """The oblique footprint solver (polytope minimum-norm points, octants for asymmetric margins) must give
    the per-axis clamp footprint on every permutation and flip of the axes."""
    rng = np.random.default_rng(3)
    perms = [
        np.eye(3)[:, list(p)] * np.array(s)
        for p in itertools.permutations(range(3))
        for s in itertools.product((1, -1), repeat=3)
    ]
    for trial in range(24):
        d = perms[trial * 2 % len(perms)]
        s = rng.choice([0.6, 0.98, 1.0, 1.25, 2.0], 3)
        sides = rng.choice([0.0, 0.4, 1.0, 2.0, 2.5, 5.0], 6)
        if sides.max() == 0:
            continue
        r_pos, r_neg = sides[0::2], sides[1::2]
        clamp = margins_module._footprint_aligned(d, s, r_pos, r_neg)
        solved = margins_module._footprint_oblique(d, s, r_pos, r_neg)
        pad = [((m - n) // 2,) * 2 for m, n in zip(solved.shape, clamp.shape)]
        assert np.array_equal(np.pad(clamp, pad), solved), (s, sides, d)


# -- analytic volumes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b, c, rx, ry, rz", [(40.18, 40.18, 37.5, 2, 2, 5), (10, 20, 30, 1, 3, 0.5)])
def test_steiner_formulas_match_integrals(a, b, c, rx, ry, rz):
    assert abs(integrated_box(a, b, c, rx, ry, rz) / steiner_box(a, b, c, rx, ry, rz) - 1) < 1e-9
    assert abs(integrated_cylinder(a / 8, c, rx) / steiner_cylinder(a / 8, c, rx) - 1) < 1e-9


def test_box_ptv_matches_minkowski_volume_and_brute_force():
    ni, nj, nk = 41, 41, 30  # 40.2 x 40.2 x 37.5 mm: a 60 cc CTV
    shape = (nk + 12, nj + 8, ni + 8)
    arr = np.zeros(shape, bool)
    arr[6 : 6 + nk, 4 : 4 + nj, 4 : 4 + ni] = True
    mask = Mask(arr, grid(shape), "CTV")
    ptv = expand(mask, Margins.axial_si(2, 5), "PTV")
    a, b, c = ni * CT_SPACING[0], nj * CT_SPACING[1], nk * CT_SPACING[2]
    analytic = steiner_box(a, b, c, 2, 2, 5) / 1000
    assert abs(ptv.volume_cc / analytic - 1) < 0.005
    # the union of the cubes is one box: clamp each voxel centre into it
    centres = ijk(np.argwhere(np.ones(shape, bool)))
    lo = np.array([4, 4, 6]) - 0.5
    hi = np.array([4 + ni, 4 + nj, 6 + nk]) - 0.5
    d = (centres - np.clip(centres, lo, hi)) * np.array(CT_SPACING)
    truth = (normalised_sq(d, Margins.axial_si(2, 5)) <= 1 + TOL).reshape(shape)
    assert np.array_equal(ptv.array, truth)
    assert ptv.name == "PTV"


def staircase_expansion_mm3(src, spacing, m, n=100_000, seed=1, k=24):
    """Monte Carlo volume (mm3) of the points within m mm of the union of the source voxels' cubes on an
    identity grid: exact clamp distances to the surface voxels' cubes, found by a k-d tree (certified:
    every cube that could be within reach is among the k nearest)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    sp = np.asarray(spacing)
    surface = src & ~ndimage.binary_erosion(src)
    cen = np.argwhere(surface)[:, ::-1] * sp
    lo, hi = cen.min(0) - sp / 2 - m, cen.max(0) + sp / 2 + m
    pts = lo + np.random.default_rng(seed).random((n, 3)) * (hi - lo)
    i, j, kk = np.clip(np.floor(pts / sp + 0.5).astype(int), 0, np.array(src.shape[::-1]) - 1).T
    in_cube = src[kk, j, i] & np.all(np.abs(pts - np.stack([i, j, kk], 1) * sp) <= sp / 2, axis=1)
    dist, idx = cKDTree(cen).query(pts, k=k)
    gap = np.maximum(np.abs(pts[:, None, :] - cen[idx]) - sp / 2, 0)
    within = np.sqrt((gap**2).sum(-1)).min(1) <= m
    assert not np.any(~in_cube & ~within & (dist[:, -1] <= m + np.linalg.norm(sp) / 2)), "raise k"
    return float((in_cube | within).mean() * np.prod(hi - lo))


@pytest.mark.parametrize("radius, m", [(5, 2), (10, 2), (10, 5), (20, 2), (30, 2)])
def test_sphere_expansion_is_the_staircase_expanded_faithfully(radius, m):
    """The exactness rule grows the union of voxel cubes, and a voxelised sphere's cube corners stick out
    of the sphere: the faithful expansion exceeds the smooth (R + m) ball by about 1.5 mm / (R + m), as if
    the margin were about 0.4 mm larger: with 2 mm, +16% at R 5, +10% at R 10, +4.0% at R 30 (measured).
    Truth here: the union of cubes grown by m, measured by Monte Carlo independently of the library.
    Sampling it at voxel centres adds up to 2.5% more at R 5 (ours: +19%, +12%, +4.6%)."""
    n = (np.ceil((radius + m + 2) / np.array(CT_SPACING)) * 2).astype(int)
    centre = (n - 1) / 2 + np.array([0.3, 0.1, 0.4])
    k, j, i = np.indices(n[::-1])
    r2 = sum(((x - c) * s) ** 2 for x, c, s in zip((i, j, k), centre, CT_SPACING))
    sphere = Mask(r2 <= radius**2, grid(n[::-1]))
    assert abs(sphere.volume_cc * 1000 / ball(radius) - 1) < 0.02  # the voxelisation itself is fair
    grown = expand(sphere, Margins.isotropic(m)).volume_cc * 1000
    truth = staircase_expansion_mm3(sphere.array, CT_SPACING, m)
    assert abs(grown / truth - 1) < 0.03  # sampling the grown staircase at voxel centres
    excess = truth / ball(radius + m) - 1
    over_margin = (radius + m) * ((1 + excess) ** (1 / 3) - 1)  # as if the margin were m + this
    assert 0.3 < over_margin < 0.6, over_margin
    assert grown > 0.98 * ball(radius + m)  # never on the unsafe side


def test_cord_prv_is_not_too_small_but_a_centre_to_centre_edt_is():
    from scipy import ndimage

    cord = cord_mask()
    analytic = steiner_cylinder(5.0, 80.0, 2.0) / 1000
    assert abs(cord.volume_cc / (math.pi * 25 * 80 / 1000) - 1) < 0.01
    ours = expand(cord, Margins.isotropic(2), "SpinalCord_PRV02")
    assert 0.0 < ours.volume_cc / analytic - 1 < 0.06  # measured +4.0%
    # Slicer's method: distance between voxel centres (here scipy's EDT on the mask)
    dist = ndimage.distance_transform_edt(~cord.array, sampling=CT_SPACING[::-1])
    edt_cc = np.count_nonzero(dist <= 2.0) * cord.geometry.voxel_volume_cc
    assert -0.13 < edt_cc / analytic - 1 < -0.06  # measured -9.2%
    assert edt_cc < 0.92 * ours.volume_cc  # measured -12.7%
    assert np.all(ours.array[dist <= 2.0])  # ours contains the centre-to-centre result


@pytest.mark.mrml
def test_cord_prv_slicer_margin_filter_is_too_small():
    cord = cord_mask()
    slicer_arr = slicer_margin_effect(cord.array, CT_SPACING, 2.0)
    slicer_cc = np.count_nonzero(slicer_arr) * cord.geometry.voxel_volume_cc
    ours = expand(cord, Margins.isotropic(2))
    analytic = steiner_cylinder(5.0, 80.0, 2.0) / 1000
    assert -0.13 < slicer_cc / analytic - 1 < -0.06
    assert slicer_cc < 0.92 * ours.volume_cc
    assert np.all(ours.array[slicer_arr])


# -- patient directions ----------------------------------------------------------------------------------


def _sphere_on(geometry, centre=(3.0, -2.0, 4.0), radius=10.0):
    k, j, i = np.indices(geometry.shape)
    ras = geometry.ijk_to_ras_points(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))
    return Mask((np.linalg.norm(ras - np.asarray(centre), axis=1) <= radius).reshape(geometry.shape), geometry)


def _same_lattice_grids():
    """One physical lattice of 0.98 x 0.98 x 1.25 mm voxels around the sphere, as three arrays."""
    n = np.array([40, 40, 40])  # voxels along R, A, S
    s = np.array(CT_SPACING)
    lo = np.array([3.0, -2.0, 4.0]) - (n - 1) / 2 * s + np.array([0.21, 0.37, 0.4])
    hi = lo + (n - 1) * s
    identity = grid(tuple(n[::-1]), tuple(s), np.eye(3), lo)
    # array axes i -> S, j -> R, k -> A
    permuted = grid((n[1], n[0], n[2]), (s[2], s[0], s[1]), PERMUTED, lo)
    # LPS-like: i runs to the left, j posterior; the origin is the right-anterior corner
    flipped = grid(tuple(n[::-1]), tuple(s), LPS_LIKE, (hi[0], hi[1], lo[2]))
    return {"identity": identity, "permuted": permuted, "flipped": flipped}


def _rounded_centres(mask):
    return {tuple(p) for p in np.round(centres_ras(mask), 6)}


@pytest.mark.parametrize(
    "margins", [Margins(0, 0, 0, 0, 5, 0), Margins(0, 0, 0, 0, 0, 5), Margins(3, 0, 0, 1, 2, 0), Margins.axial_si(2, 5)]
)
def test_same_lattice_in_permuted_and_flipped_arrays_gives_the_same_voxels(margins):
    grids = _same_lattice_grids()
    results = {name: _rounded_centres(expand(_sphere_on(g), margins)) for name, g in grids.items()}
    assert results["permuted"] == results["identity"]
    assert results["flipped"] == results["identity"]


def test_superior_means_superior_on_every_grid():
    grids = _same_lattice_grids()
    centre, radius = np.array([3.0, -2.0, 4.0]), 10.0
    grids["oblique"] = grid((52, 52, 52), directions=OBLIQUE, origin=centre - OBLIQUE @ (25.3 * np.array(CT_SPACING)))
    up_cc, counts = {}, {}
    for name, g in grids.items():
        ctv = _sphere_on(g)
        up = expand(ctv, Margins(0, 0, 0, 0, 5, 0))
        down = expand(ctv, Margins(0, 0, 0, 0, 0, 5))
        z0, zu, zd = (centres_ras(m)[:, 2] for m in (ctv, up, down))
        # the top rises by 5 mm (within one voxel's height), the bottom stays, and the reverse for I
        assert 5 - 1.3 <= zu.max() - z0.max() <= 5 + 1.3, name
        assert zu.min() >= z0.min() - 1.3 and zd.max() <= z0.max() + 1.3, name
        assert 5 - 1.3 <= z0.min() - zd.min() <= 5 + 1.3, name
        shift_up = up.centroid_ras() - ctv.centroid_ras()
        shift_down = down.centroid_ras() - ctv.centroid_ras()
        assert shift_up[2] > 1.0 and shift_down[2] < -1.0, name
        assert np.all(np.abs(shift_up[:2]) < 0.2) and np.all(np.abs(shift_down[:2]) < 0.2), name
        # growth straight up, not along a tilted array axis: a 12 mm S margin stays within the sphere's
        # shadow, widened by at most half a voxel diagonal (0.9 mm); along the tilted k axis it would
        # lean out by 12 sin(10 deg) = 2.1 mm
        tall = centres_ras(expand(ctv, Margins(0, 0, 0, 0, 12, 0)))
        assert np.linalg.norm(tall[:, :2] - centre[:2], axis=1).max() <= radius + 0.9, name
        assert 12 - 1.3 <= tall[:, 2].max() - z0.max() <= 12 + 1.3, name
        up_cc[name] = (ctv.volume_cc, up.volume_cc)
        counts[name] = (ctv.voxel_count, up.voxel_count)
    assert counts["permuted"] == counts["identity"] and counts["flipped"] == counts["identity"]
    # Volume on the oblique grid: the voxelised sphere differs by under 2%; the added volume is 5 mm times
    # the shadow of the voxel cubes, whose rim lies between R and R + half a voxel, depending on how the
    # lattice falls (aligned columns leave a gap, tilted ones do not): at most 5 mm x 2 pi (R + 1) x 0.5 mm.
    (ctv_id, up_id), (ctv_ob, up_ob) = up_cc["identity"], up_cc["oblique"]
    assert abs(ctv_ob - ctv_id) < 0.02 * ctv_id
    assert abs(up_ob - up_id) <= 0.02 * ctv_id + 5 * 2 * math.pi * (radius + 1) * 0.5 / 1000


# -- edges, empties, inputs --------------------------------------------------------------------------------


def test_expansion_clipped_at_grid_edge_warns():
    arr = np.zeros((10, 10, 10), bool)
    arr[1:3, 4:6, 4:6] = True
    mask = Mask(arr, grid(arr.shape))
    with pytest.warns(GeometryWarning, match="clipped"):
        expand(mask, Margins(0, 0, 0, 0, 0, 2), "PTV")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grown = expand(mask, Margins(0, 0, 0, 0, 2, 0))  # towards S: room enough, no warning
    assert grown.voxel_count > mask.voxel_count


def test_structure_running_off_the_grid_is_not_warned_about():
    # A cord through every slice is cut by the scan, not by the margin: no warning at its ends...
    arr = np.zeros((10, 12, 12), bool)
    arr[:, 5:7, 5:7] = True
    mask = Mask(arr, grid(arr.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prv = expand(mask, Margins.isotropic(2))
    assert prv.array[0].sum() == prv.array[5].sum()
    # ...but a margin cut at a side the structure does not reach is.
    arr2 = np.zeros((10, 12, 12), bool)
    arr2[:, 5:7, 1:3] = True
    with pytest.warns(GeometryWarning, match="clipped"):
        expand(Mask(arr2, grid(arr2.shape)), Margins.isotropic(2))


def test_shrink_at_grid_edge_warns():
    arr = np.zeros((12, 12, 12), bool)
    arr[0:8, 2:10, 2:10] = True
    mask = Mask(arr, grid(arr.shape))
    with pytest.warns(GeometryWarning, match="edge"):
        inner = shrink(mask, Margins.isotropic(1.5))
    assert not inner.array[0].any()  # beyond the grid counts as outside
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shrink(mask, Margins(1.5, 1.5, 1.5, 1.5, 1.5, 0))  # the inferior side keeps its voxels: no warning


def test_empty_and_zero_margins():
    geometry = grid((8, 8, 8))
    empty = Mask(np.zeros(geometry.shape, bool), geometry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert expand(empty, Margins.axial_si(2, 5)).is_empty
        assert shrink(empty, Margins.axial_si(2, 5)).is_empty
    arr = np.zeros(geometry.shape, bool)
    arr[3:5, 3:5, 3:5] = True
    one = Mask(arr, geometry, "CTV")
    assert np.array_equal(expand(one, Margins.isotropic(0)).array, arr)
    assert np.array_equal(shrink(one, Margins.isotropic(0)).array, arr)
    assert expand(one, Margins.isotropic(0)).name == "CTV"


def test_inputs_are_never_modified():
    rng = np.random.default_rng(2)
    for directions in (np.eye(3), OBLIQUE):
        mask = Mask(random_mask((16, 16, 16), rng), grid((16, 16, 16), directions=directions))
        before = mask.array.copy()
        for op in (expand, shrink):
            out = op(mask, Margins(1, 2, 0, 3, 2, 1))
            assert not out.array.flags.writeable
            assert out.array is not mask.array
        assert np.array_equal(mask.array, before) and not mask.array.flags.writeable


def test_footprint_is_read_only_and_cached():
    g = grid((4, 4, 4), directions=OBLIQUE)
    fp = footprint(g, Margins.axial_si(2, 5))
    assert fp is footprint(g, Margins.axial_si(2, 5))
    assert not fp.flags.writeable and all(n % 2 == 1 for n in fp.shape)
    centre = tuple(n // 2 for n in fp.shape)
    assert fp[centre] and np.array_equal(fp, fp[::-1, ::-1, ::-1])  # symmetric margins: symmetric footprint
