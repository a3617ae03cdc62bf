"""Exact margins: properties that hold for every mask, grid and margin (hypothesis).

The rule (margins.py): voxel x is in the expansion E_m(S) iff its centre c(x) lies in C(S) + K_m, where
C(S) is the union of the closed cubes of the voxels of S and K_m the reach set {d : sum_a (d_a / r_a)^2
<= 1}, r_a the margin on the side d points to (zero: no step that way). The shrink Sh_m(S) keeps x iff
c(x) + K_m misses the cubes of every voxel outside S, the grid continued beyond its edge as outside.

For lattice points x, z: "c(z) lies in cube(x) + K_m" and "c(x) + K_m meets cube(z)" are the same
condition on z - x (the cube is centrally symmetric), so E_m is a dilation of the voxel set by one
integer footprint and Sh_m is its adjoint erosion: E_m(A) <= B iff A <= Sh_m(B) when no margin leaves
the grid. What follows from that alone is asserted here, exactly (voxel for voxel):

* S <= E_m(S); Sh_m(S) <= S;
* monotone: a componentwise larger margin gives a larger expansion and a smaller shrink;
* E_m(A | B) = E_m(A) | E_m(B) and Sh_m(A & B) = Sh_m(A) & Sh_m(B) (so both are monotone in the mask);
* opening and closing: E_m(Sh_m(S)) <= S <= Sh_m(E_m(S)), E_m Sh_m E_m = E_m and Sh_m E_m Sh_m = Sh_m;
* expansions commute: E_n(E_m(S)) = E_m(E_n(S));
* Sh_m(S) is the complement of the expansion of the outside by the mirrored margins;
* the result does not depend on how one physical lattice is stored (axes permuted or flipped, any
  orientation), and a point reflection of the lattice mirrors the margins.

Two quantitative checks, computed apart from the library (scipy dilation by tables of lattice offsets):
E_m(S) lies between the voxels within reach of sampled points of the source cubes (which contains the
centre-to-centre result of Slicer's margin filter) and the same with the reach widened by the sampling
step; and each side grows by its own margin only (on axis-aligned grids by exactly floor(r / s + 1/2)
voxels, ties included).

Not asserted, because it is false for a voxelised rule: E_n(E_m(S)) and E_{m+n}(S) are in general not
nested either way (the cubes of E_m(S) neither cover nor stay inside C(S) + K_m); see
``test_sequential_expansions_are_not_one_expansion``.

The planning volumes (protocol loaded from its file) satisfy PTV = CTV + protocol margins, PTV_Eval =
PTV minus the canal (SpinalCanal, or SacralCanal and SacralForamina at S1-S5): disjoint from the canal
and, with the part of the PTV in the canal, the whole PTV.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from scipy import ndimage

from SIBSpineSBRTLib.geometry.grid import ImageGeometry
from SIBSpineSBRTLib.geometry.margins import Margins, expand, shrink
from SIBSpineSBRTLib.geometry.masks import Mask
from SIBSpineSBRTLib.protocol.model import load_protocol
from SIBSpineSBRTLib.review.planning_volumes import build_planning_volumes
from SIBSpineSBRTLib.warnings import GeometryWarning

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples on every run and machine
    database=None,  # nothing written next to the sources
    suppress_health_check=[HealthCheck.too_slow],
)
MAX_MARGIN_MM = 4.0


# -- strategies ---------------------------------------------------------------------------------------------


def rotation(axis, radians):
    """Rotation matrix about RAS axis 0 (R), 1 (A) or 2 (S)."""
    c, s = math.cos(radians), math.sin(radians)
    a, b = [x for x in range(3) if x != axis]
    m = np.eye(3)
    m[a, a], m[a, b], m[b, a], m[b, b] = c, -s, s, c
    return m


@st.composite
def directions(draw):
    """(kind, 3x3 matrix whose columns are the i, j, k directions): identity, permuted, flipped, both,
    or oblique (three rotations, the first at least 0.05 rad), itself possibly permuted and flipped."""
    kind = draw(
        st.sampled_from(["identity", "permuted", "flipped", "permuted+flipped"] + ["oblique", "oblique+flipped"] * 2)
    )
    d = np.eye(3)
    if kind.startswith("oblique"):
        d = (
            rotation(2, draw(st.floats(0.05, 1.5)))
            @ rotation(1, draw(st.floats(-1.5, 1.5)))
            @ rotation(0, draw(st.floats(-1.5, 1.5)))
        )
    if kind.startswith(("permuted", "oblique")):
        d = d[:, draw(st.permutations([0, 1, 2]))]
    if kind.endswith("flipped"):
        d = d * np.array(draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=3, max_size=3)))
    return kind, d


def margin_values(max_mm=MAX_MARGIN_MM):
    return st.one_of(st.just(0.0), st.floats(0.0, max_mm))


@st.composite
def margins(draw, max_mm=MAX_MARGIN_MM):
    return Margins(*[draw(margin_values(max_mm)) for _ in range(6)])


@st.composite
def voxel_margins(draw, geometry, max_voxels=2.5):
    """Margins of up to ``max_voxels`` of the grid's finest spacing: comparable to the masks, so that shrinks
    keep some voxels and remove others."""
    values = st.one_of(st.just(0.0), st.floats(0.5, max_voxels))  # a nonzero side removes a layer or more
    return Margins(*[draw(values) * min(geometry.spacing) for _ in range(6)])


def any_margins(geometry):
    """Margins in mm, or (two times in three) in voxels, so that shrinks often keep part of a mask."""
    return st.one_of(margins(), voxel_margins(geometry, 2.0), voxel_margins(geometry, 1.0))


@st.composite
def grids(draw, room_mm=None, room_voxels=None, max_size=12, max_core=8):
    """(geometry, core): a random grid; with ``room_mm`` (or ``room_voxels`` of the finest spacing), the
    core (where masks go) is padded on every side by more than a margin of that size can reach, else the
    core is the whole grid (masks may touch its edge)."""
    spacing = tuple(draw(st.floats(0.5, 2.5)) for _ in range(3))  # si, sj, sk
    kind, d = draw(directions())
    origin = tuple(draw(st.floats(-50.0, 50.0)) for _ in range(3))
    if room_voxels is not None:
        room_mm = room_voxels * min(spacing)
    if room_mm is None:
        shape = tuple(draw(st.integers(1, max_size)) for _ in range(3))
        core = (np.zeros(3, int), np.array(shape))
    else:
        size = np.array([draw(st.integers(1, max_core)) for _ in range(3)])
        # a centre within r mm of a cube lies within r / s + 1/2 index steps of its voxel along each axis
        pad = np.array([math.ceil(room_mm / spacing[2 - axis]) + 1 for axis in range(3)])
        shape = tuple(int(n) for n in size + 2 * pad)
        core = (pad, pad + size)
    event(kind)
    note(f"{kind} grid {shape}, spacing {spacing}, directions {d.round(4).tolist()}")
    return ImageGeometry(shape, origin, spacing, tuple(map(tuple, d))), core


@st.composite
def arrays(draw, geometry, core, nonempty=False):
    """Inside the core, either a random fill (density 0.1-1) of a sub-box, or a union of one to three thick
    boxes (each spans the middle of the core) with a few holes, so that shrinks keep something."""
    lo_core, hi_core = (np.asarray(c, int) for c in core)
    arr = np.zeros(geometry.shape, bool)
    if draw(st.booleans()):
        lo = np.array([draw(st.integers(a, b - 1)) for a, b in zip(lo_core, hi_core)])
        hi = np.array([draw(st.integers(a + 1, b)) for a, b in zip(lo, hi_core)])
        density = draw(st.one_of(st.just(1.0), st.floats(0.1, 1.0)))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        arr[tuple(slice(a, b) for a, b in zip(lo, hi))] = rng.random(tuple(hi - lo)) < density
    else:
        mid = (lo_core + hi_core) // 2
        for _ in range(draw(st.integers(1, 3))):
            lo = [draw(st.integers(a, m)) for a, m in zip(lo_core, mid)]
            hi = [draw(st.integers(m + 1, b)) for m, b in zip(mid, hi_core)]
            arr[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
        holes = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(arr.shape)
        arr &= holes >= draw(st.sampled_from([0.0, 0.0, 0.02, 0.1]))
    if nonempty and not arr.any():
        arr[tuple(lo_core)] = True
    return arr


def mask_of(arr, geometry):
    return Mask(arr, geometry)


def quietly(op, *args):
    """Run a margin operation where clipping at the grid edge is part of the case."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        return op(*args).array


def unclipped_expand(mask, m):
    """Expand where the grid has room: the library must not warn about clipping."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeometryWarning)
        return expand(mask, m).array


def subset(a, b):
    return not np.any(a & ~b)


def shrink_event(src, inner):
    """Record how much a shrink removed (see --hypothesis-show-statistics): the shrink properties need cases
    where some voxels survive and some do not."""
    event("shrink " + ("empty" if not inner.any() else "kept all" if np.array_equal(inner, src) else "partial"))


def mirrored(m):
    return Margins(m.L, m.R, m.P, m.A, m.I, m.S)


# -- expansion and shrink on their own ------------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_source_lies_in_its_expansion_and_its_shrink_in_the_source(data):
    # the reach set contains the step 0, and a voxel's centre lies in its own cube
    geometry, core = data.draw(grids())
    m = data.draw(any_margins(geometry))
    src = data.draw(arrays(geometry, core))
    grown = quietly(expand, mask_of(src, geometry), m)
    inner = quietly(shrink, mask_of(src, geometry), m)
    assert subset(src, grown)
    assert subset(inner, src)
    if m.is_zero:
        assert np.array_equal(grown, src) and np.array_equal(inner, src)


@PROPERTY
@given(data=st.data(), extra=st.lists(margin_values(2.0), min_size=6, max_size=6))
def test_a_larger_margin_on_any_side_gives_a_superset(data, extra):
    # r <= r' on every side makes every term (d_a / r_a)^2 no smaller: K_m lies in K_m'
    geometry, core = data.draw(grids())
    m = data.draw(any_margins(geometry))
    src = mask_of(data.draw(arrays(geometry, core)), geometry)
    larger = Margins(*[a + b for a, b in zip(m.as_tuple(), extra)])
    assert subset(quietly(expand, src, m), quietly(expand, src, larger))
    assert subset(quietly(shrink, src, larger), quietly(shrink, src, m))


@PROPERTY
@given(data=st.data())
def test_expansion_distributes_over_union_and_shrink_over_intersection(data):
    # a dilation of a union is the union of the dilations; the outside of A & B is the union of the outsides
    geometry, core = data.draw(grids())
    m = data.draw(any_margins(geometry))
    a = data.draw(arrays(geometry, core))
    b = data.draw(arrays(geometry, core))
    ea, eb, eab = (quietly(expand, mask_of(x, geometry), m) for x in (a, b, a | b))
    assert np.array_equal(eab, ea | eb)
    sa, sb, sab = (quietly(shrink, mask_of(x, geometry), m) for x in (a, b, a & b))
    shrink_event(a & b, sab)
    assert np.array_equal(sab, sa & sb)


@PROPERTY
@given(data=st.data())
def test_opening_lies_in_the_source(data):
    # z in E_m({x}) means c(x) + K_m meets cube(z); x in Sh_m(S) means that set misses every outside cube
    # (beyond the grid too), so z is in S. Holds at grid edges as well (masks touch them half the time).
    geometry, core = data.draw(st.one_of(grids(), grids(room_voxels=2.0, max_core=10)))
    m = data.draw(any_margins(geometry))
    src = data.draw(arrays(geometry, core))
    inner = quietly(shrink, mask_of(src, geometry), m)
    shrink_event(src, inner)
    assert subset(quietly(expand, mask_of(inner, geometry), m), src)


@PROPERTY
@given(data=st.data(), in_voxels=st.booleans())
def test_closing_contains_the_source_and_both_are_idempotent(data, in_voxels):
    # With room on the grid, E_m and Sh_m are adjoint: E_m(A) <= B iff A <= Sh_m(B).
    if in_voxels:
        geometry, core = data.draw(grids(room_voxels=2.5, max_core=10))
        m = data.draw(voxel_margins(geometry, 2.5))
    else:
        geometry, core = data.draw(grids(room_mm=MAX_MARGIN_MM))
        m = data.draw(margins())
    src = data.draw(arrays(geometry, core))
    grown = unclipped_expand(mask_of(src, geometry), m)
    closed = quietly(shrink, mask_of(grown, geometry), m)
    assert subset(src, closed)
    assert np.array_equal(unclipped_expand(mask_of(closed, geometry), m), grown)  # E Sh E = E
    inner = quietly(shrink, mask_of(src, geometry), m)
    shrink_event(src, inner)
    opened = unclipped_expand(mask_of(inner, geometry), m)
    assert subset(opened, src)
    assert np.array_equal(quietly(shrink, mask_of(opened, geometry), m), inner)  # Sh E Sh = Sh


@PROPERTY
@given(data=st.data(), m=margins(max_mm=2.0), n=margins(max_mm=2.0))
def test_expansions_commute(data, m, n):
    # both are the dilation by the lattice Minkowski sum of the two footprints
    geometry, core = data.draw(grids(room_mm=4.0))
    src = mask_of(data.draw(arrays(geometry, core)), geometry)
    em, en = unclipped_expand(src, m), unclipped_expand(src, n)
    mn = unclipped_expand(mask_of(em, geometry), n)
    nm = unclipped_expand(mask_of(en, geometry), m)
    assert np.array_equal(mn, nm)
    assert subset(em | en, mn)


def test_sequential_expansions_are_not_one_expansion():
    """Why no relation between E_n(E_m(S)) and E_{m+n}(S) is asserted: on a 1 mm grid, one voxel grown by
    0.4 mm stays one voxel (its face neighbours' centres are 0.5 mm from its cube), so growing twice by 0.4 mm
    gives 1 voxel where 0.8 mm gives 19 (faces at 0.5, edges at 0.71 mm). By 0.6 mm it becomes a cross of 7;
    the cross grown by the cross is the 25 offsets with |w|_1 <= 2, while 1.2 mm gives the 3x3x3 block of 27:
    (2, 0, 0) is only in the first (1.5 mm from the cube), (1, 1, 1) only in the second (0.87 mm)."""
    geometry = ImageGeometry((9, 9, 9), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    arr = np.zeros(geometry.shape, bool)
    arr[4, 4, 4] = True
    one = Mask(arr, geometry)

    def twice(m):
        return expand(expand(one, Margins.isotropic(m)), Margins.isotropic(m)).array

    assert np.count_nonzero(twice(0.4)) == 1
    assert np.count_nonzero(expand(one, Margins.isotropic(0.8)).array) == 19
    two, single = twice(0.6), expand(one, Margins.isotropic(1.2)).array
    assert (np.count_nonzero(two), np.count_nonzero(single)) == (25, 27)
    assert not subset(two, single) and not subset(single, two)
    assert two[4, 4, 6] and not single[4, 4, 6] and single[5, 5, 5] and not two[5, 5, 5]


def centres_ras(arr, geometry):
    k, j, i = np.nonzero(arr)
    return geometry.ijk_to_ras_points(np.stack([i, j, k], axis=1).astype(float))


def normalised_sq(d, m):
    """sum_a (d_a / r_a)^2 with r_a the margin on the side d_a points to; a zero margin admits no step."""
    r = np.where(d > 0, [m.R, m.A, m.S], [m.L, m.P, m.I])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = np.where(d == 0, 0.0, np.where(r > 0, (d / np.where(r > 0, r, 1.0)) ** 2, np.inf))
    return terms.sum(axis=-1)


SAMPLES = np.linspace(-0.5, 0.5, 5)  # points of a voxel's cube, in index units: 1/4 voxel apart
CUBE_POINTS = np.array([[a, b, c] for a in SAMPLES for b in SAMPLES for c in SAMPLES])


def reached_from_points(src, geometry, m, points, limit):
    """Voxels whose centre lies within normalised_sq <= limit of a point ``c(v) + P u`` of a source voxel v,
    u in ``points`` (index units): scipy's dilation by a table of lattice offsets, computed apart from ours.
    With the centre alone, this is the centre-to-centre rule of Slicer's margin filter."""
    p = geometry.direction_matrix * np.asarray(geometry.spacing)  # columns: the RAS step along i, j, k
    reach = [int(math.ceil(math.sqrt(limit) * max(m.as_tuple()) / s)) + 1 for s in geometry.spacing]
    w = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in reach], indexing="ij"), axis=-1)  # [i, j, k, 3]
    ok = np.zeros(w.shape[:3], bool)
    for u in points:
        ok |= normalised_sq((w - u) @ p.T, m) <= limit
    return ndimage.binary_dilation(src, structure=ok.transpose(2, 1, 0))  # table in numpy order k, j, i


def largest_gauge(half_box, geometry, m):
    """Largest sqrt(normalised_sq) over the steps P u, u in the box [-half_box, half_box]^3 (index units): at
    a corner, the reach set being convex."""
    corners = np.array([[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]) * half_box
    steps = corners @ (geometry.direction_matrix * np.asarray(geometry.spacing)).T
    return float(np.sqrt(normalised_sq(steps, m).max()))


@PROPERTY
@given(data=st.data(), m=margins())
def test_expansion_is_bracketed_by_sampled_cubes(data, m):
    # Lower bound: sampled points of a source cube are region points, so a centre within reach of one is
    # in (the centre alone gives the centre-to-centre result: ours contains it). Upper bound: the reach set
    # is convex (each term of the sum is convex), so g(d) = sqrt(normalised_sq(d)) is subadditive; every
    # cube point y lies within 1/8 voxel per index axis of a sample y_s, so g(c(z) - y_s) <= 1 + g_cell with
    # g_cell the largest gauge of those 1/8-voxel steps. Zero sides make g infinite: no upper bound then.
    geometry, core = data.draw(grids())
    src = data.draw(arrays(geometry, core))
    grown = quietly(expand, mask_of(src, geometry), m)
    if m.is_zero:
        return
    assert subset(reached_from_points(src, geometry, m, [np.zeros(3)], 1.0 - 1e-9), grown)
    assert subset(reached_from_points(src, geometry, m, CUBE_POINTS, 1.0 - 1e-9), grown)
    if min(m.as_tuple()) > 0:
        g_cell = largest_gauge(0.125, geometry, m)
        assert subset(grown, reached_from_points(src, geometry, m, CUBE_POINTS, (1 + g_cell) ** 2 + 1e-9))


@st.composite
def margins_with_ties(draw, geometry, max_mm=MAX_MARGIN_MM):
    """Margins where some sides put voxel centres exactly on the reach (n - 1/2 voxels from a cube face,
    along the patient axis of that side; on an oblique grid, a generic value)."""
    steps = np.abs(geometry.direction_matrix) @ np.asarray(geometry.spacing)  # per patient axis R, A, S
    sides = []
    for axis in (0, 0, 1, 1, 2, 2):
        ties = [(n - 0.5) * steps[axis] for n in range(1, 6) if (n - 0.5) * steps[axis] <= max_mm]
        sides.append(draw(st.one_of(margin_values(max_mm), st.sampled_from(ties))) if ties else draw(margin_values()))
    return Margins(*sides)


@PROPERTY
@given(data=st.data())
def test_each_side_grows_by_its_own_margin(data):
    # A step d in K_m has 0 <= d_a <= r_a towards +a (R, A, S) and 0 <= -d_a <= r_a towards -a, and the
    # region points y of a voxel cube lie within h_a (half the cube's extent along patient axis a) of its
    # centre: so the centres of E_m(S) stay within [min - h - r(-a), max + h + r(+a)] of those of S along
    # every patient axis, which also pins a zero-margin side to within h. On an axis-aligned grid the
    # extreme voxel's cube face is flat, and the extent grows by exactly the whole voxels whose centre
    # lies within the margin of that face: floor(r / s + 1/2) of them.
    geometry, core = data.draw(grids(room_mm=MAX_MARGIN_MM))
    m = data.draw(margins_with_ties(geometry))
    src = data.draw(arrays(geometry, core, nonempty=True))
    grown = unclipped_expand(mask_of(src, geometry), m)
    before, after = centres_ras(src, geometry), centres_ras(grown, geometry)
    d = geometry.direction_matrix
    half = 0.5 * np.abs(d) @ np.asarray(geometry.spacing)  # per patient axis R, A, S
    r_pos, r_neg = np.array([m.R, m.A, m.S]), np.array([m.L, m.P, m.I])
    assert np.all(after.max(axis=0) <= before.max(axis=0) + half + r_pos + 1e-9)
    assert np.all(after.min(axis=0) >= before.min(axis=0) - half - r_neg - 1e-9)
    if np.all((np.abs(d) < 1e-12) | (np.abs(d) > 1 - 1e-12)):
        s = 2 * half  # the spacing along each patient axis
        grow_pos = np.floor(r_pos / s + 0.5 + 1e-9) * s
        grow_neg = np.floor(r_neg / s + 0.5 + 1e-9) * s
        assert np.allclose(after.max(axis=0) - before.max(axis=0), grow_pos, atol=1e-6)
        assert np.allclose(before.min(axis=0) - after.min(axis=0), grow_neg, atol=1e-6)


@PROPERTY
@given(data=st.data())
def test_shrink_is_the_outside_grown_by_the_mirrored_margins(data):
    # x is lost iff some outside point y has y - c(x) in K_m, i.e. c(x) - y in K_mirror(m) = -K_m
    geometry, core = data.draw(st.one_of(grids(), grids(room_voxels=2.0, max_core=10)))
    m = data.draw(any_margins(geometry))
    src = data.draw(arrays(geometry, core))
    pad = [math.ceil(max(m.as_tuple()) / geometry.spacing[2 - axis]) + 1 for axis in range(3)]
    inner = quietly(shrink, mask_of(src, geometry), m)
    shrink_event(src, inner)
    big = geometry.crop([-p for p in pad], [n + p for n, p in zip(geometry.shape, pad)])  # the grid, padded
    outside = ~np.pad(src, [(p, p) for p in pad], constant_values=False)
    reached = unclipped_expand(mask_of(outside, big), mirrored(m))
    inside = tuple(slice(p, p + n) for p, n in zip(pad, geometry.shape))
    assert np.array_equal(inner, ~reached[inside])


# -- the result belongs to the patient, not to the array layout --------------------------------------------


def relabel(arr, geometry, flips, perm):
    """The same physical voxels stored differently: numpy axes in ``flips`` reversed, then transposed by
    ``perm`` (new numpy axis q is old axis perm[q])."""
    d = geometry.direction_matrix.copy()
    origin = np.asarray(geometry.origin, float)
    for axis in flips:
        b = 2 - axis  # its i, j, k column
        origin = origin + d[:, b] * geometry.spacing[b] * (geometry.shape[axis] - 1)
        d[:, b] = -d[:, b]
        arr = np.flip(arr, axis)
    arr = np.ascontiguousarray(arr.transpose(perm))
    old_b = [2 - perm[2 - b] for b in range(3)]  # new i, j, k axis b is old axis old_b[b]
    spacing = tuple(geometry.spacing[c] for c in old_b)
    new = ImageGeometry(arr.shape, tuple(origin), spacing, tuple(map(tuple, d[:, old_b])))
    return arr, new


def unlabel(arr, flips, perm):
    arr = arr.transpose([int(a) for a in np.argsort(perm)] + list(range(3, arr.ndim)))
    for axis in flips:
        arr = np.flip(arr, axis)
    return arr


@PROPERTY
@given(data=st.data(), flips=st.lists(st.integers(0, 2), unique=True, max_size=3), perm=st.permutations([0, 1, 2]))
def test_the_same_lattice_stored_differently_gives_the_same_voxels(data, flips, perm):
    geometry, core = data.draw(grids())
    m = data.draw(any_margins(geometry))
    src = data.draw(arrays(geometry, core))
    arr2, geometry2 = relabel(src, geometry, flips, perm)
    # the relabelled grid puts every voxel centre where it was
    k, j, i = np.indices(geometry.shape)
    ras = geometry.ijk_to_ras_points(np.stack([i.ravel(), j.ravel(), k.ravel()], 1)).reshape(*geometry.shape, 3)
    k2, j2, i2 = np.indices(geometry2.shape)
    ras2 = geometry2.ijk_to_ras_points(np.stack([i2.ravel(), j2.ravel(), k2.ravel()], 1)).reshape(*arr2.shape, 3)
    assert np.allclose(unlabel(ras2, flips, perm), ras, atol=1e-9)
    for op in (expand, shrink):
        want = quietly(op, mask_of(src, geometry), m)
        got = quietly(op, mask_of(arr2, geometry2), m)
        assert np.array_equal(unlabel(got, flips, perm), want), op.__name__
    # reflected through the origin, the same array is the mirror image of the lattice: so is the reach set
    reflected = ImageGeometry(geometry.shape, tuple(-np.asarray(geometry.origin)), geometry.spacing,
                              tuple(map(tuple, -geometry.direction_matrix)))  # fmt: skip
    for op in (expand, shrink):
        want = quietly(op, mask_of(src, geometry), m)
        assert np.array_equal(quietly(op, mask_of(src, reflected), mirrored(m)), want), op.__name__


# -- planning volumes -------------------------------------------------------------------------------------------

PROTOCOL = load_protocol()
LEVELS_BY_REGION = {
    "thoracic": [f"T{n}" for n in range(1, 13)],
    "sacral": [f"S{n}" for n in range(1, 6)],
}
CANALS = {"thoracic": ("SpinalCanal",), "sacral": ("SacralCanal", "SacralForamina")}


@pytest.mark.parametrize("region", sorted(LEVELS_BY_REGION))
@settings(PROPERTY, max_examples=80)  # about a quarter reach the full check (the rest touch the grid's ends)
@given(data=st.data())
def test_ptv_eval_is_the_ptv_outside_the_canal(region, data):
    level = data.draw(st.sampled_from(LEVELS_BY_REGION[region]))
    geometry, core = data.draw(grids())
    override = data.draw(st.one_of(st.none(), margins()))
    names = ("CTV", "SpinalCord", "ThecalSac", "SpinalCanal", "SacralCanal", "SacralForamina")
    # every canal is present at every level: the one the level does not use must be left alone
    masks = {
        n: Mask(data.draw(arrays(geometry, core, nonempty=n in ("CTV", "SpinalCord"))), geometry, n) for n in names
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)
        vols, problems = build_planning_volumes(PROTOCOL, masks, level, ptv_margins=override)
    expected_margins = override or Margins(*PROTOCOL.planning.ptv_margins_mm)
    want_ptv = quietly(expand, masks["CTV"], expected_margins)
    prv = vols["SpinalCord_PRV02"].mask.array
    assert np.array_equal(prv, quietly(expand, masks["SpinalCord"], Margins.isotropic(PROTOCOL.planning.prv_margin_mm)))
    if masks["CTV"].touched_end_slices() or Mask(want_ptv, geometry).touched_end_slices():
        # a target reaching the grid's first or last slice was probably cut: no PTV is built from it
        assert set(problems) == {"PTV", "PTV_Eval"} and "cut" in problems["PTV"]
        return
    assert problems == {}
    ptv, ptv_eval = (vols[n].mask.array for n in ("PTV", "PTV_Eval"))
    canal = np.zeros(geometry.shape, bool)
    for n in CANALS[region]:
        canal |= masks[n].array

    assert np.array_equal(ptv, want_ptv)
    assert subset(masks["CTV"].array, ptv)
    assert not np.any(ptv_eval & canal)
    assert np.array_equal(ptv_eval | (ptv & canal), ptv)
    assert subset(ptv_eval, ptv)
    assert vols["PTV_Eval"].sources == ("PTV", *CANALS[region])
