"""Exact margins on planar contours (the slab model of ``dose.contours``), with shapely (GEOS).

The rule is documented with the labelmap rule in ``geometry.margins`` (one home for the margin rules); this
module says how it is computed.

Source and result
-----------------
A source is a ``dose.contours.ContourStructure``: plane i holds the region P_i of its rings (even-odd, minus
explicit holes) and stands for the slab [z_i - below_i, z_i + above_i] along the contour normal. The solid is
the union of the slabs P_i x [lo_i, hi_i]. Its Minkowski sum with the margin ellipsoid E is cut, at height z,
in the union over slabs of P_i grown in-plane by the section of E at the slab's distance
d_i(z) = max(lo_i - z, z - hi_i, 0): the in-plane ellipse scaled by sqrt(1 - (d_i / r_n)^2), r_n the margin on
the side of the slab that z lies on (S above, I below for axial contours); slabs with d_i > r_n do not reach.

The result is a ``ContourStructure`` whose planes lie at the given positions (the planning CT's slices), each
holding the exact section at its position, and whose slabs meet half way between planes, except at the ends
of the solid: the end slabs stop exactly where the grown solid stops (5 mm beyond the source's end slabs for
a 5 mm S-I margin), not at the next half slice (``ContourPlane.below_mm`` / ``above_mm`` say so). A stretch
of the grown solid that holds no position gets one extra plane at its middle. Sections are exact up to the
arcs, drawn with ``QUAD_SEGS`` segments per quarter circle (vertices on the arc: the offset is short by at
most 3e-4 of the margin; its area is within 0.03% of the true offset).

How an in-plane offset is done
------------------------------
* in-plane margins symmetric (R = L, A = P): in coordinates where the v axis is scaled by r_u / r_v the
  ellipse is a circle, so the region is buffered by a round join (GEOS ``buffer``) of radius r_u * scale
  and scaled back: exact Minkowski sums with an ellipse (linear maps commute with Minkowski sums);
* otherwise (R != L or A != P, or one in-plane margin zero): a Minkowski sum with the polygon inscribed in
  the asymmetric ellipse (``ELLIPSE_SEGMENTS`` vertices, quarter-ellipses of the margins of their quadrant).
  For a convex pattern K, P + K is P, plus every edge swept outwards to K's support point along its outward
  normal, plus at every convex vertex K's boundary between the supports of its two edge normals (the
  nearest-point argument: a point of P + K outside P is reached from an edge's interior along a support
  direction, or from a convex vertex within its normal cone); runs of convex vertices make one strip. These
  pieces are united by GEOS.

Unions are checked (``_union``): GEOS 3.11's floating overlays can silently drop parts of a union of many
overlapping pieces (seen on spiky polygons), so a union that leaves an input vertex outside its result is redone
with the snap-rounding overlay on a 1e-6 mm grid, which is robust.

PTV_Eval (``subtract_contours``) removes from each plane of the PTV the regions of every plane of the canal
structures whose slab overlaps the plane's slab, so the result is disjoint from the canal's solid.
``rasterize`` gives the labelmap of a contour structure (a voxel is in when its centre is in the solid) for
display and storage.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..warnings import GeometryWarning
from .grid import GeometryError, ImageGeometry
from .margins import Margins
from .masks import Mask

#: The pinned requirement the Slicer module offers to install (``review.readiness.PACKAGES``).
SHAPELY_REQUIREMENT = "shapely==2.0.7"
#: Round-join segments per quarter circle: vertices on the arc, chord sagitta 1 - cos(pi / 256) = 7.5e-5 of the
#: radius between them.
QUAD_SEGS = 32
#: Vertices of the polygonal ellipse for asymmetric in-plane margins (a multiple of 4: the axis points).
ELLIPSE_SEGMENTS = 128
#: Lengths this close (mm) count as equal (plane positions, slab ends).
TOL_MM = 1e-6

#: ``ContourStructure.end_caps`` of a grown structure: its end slabs end where the grown solid ends.
EXACT_ENDS = "exact"


class ContourMarginError(GeometryError):
    """Contours the contour margin engine cannot grow (planes not along patient axes, no area, no shapely)."""


def shapely_available() -> bool:
    """True when shapely can be imported."""
    try:
        import shapely  # noqa: F401
    except ImportError:
        return False
    return True


def _shapely():
    try:
        import shapely
    except ImportError as exc:  # desktop Slicer does not bundle it
        raise ContourMarginError(
            f"Margins on contours need the shapely package (GEOS). In Slicer's Python console run "
            f"slicer.util.pip_install('{SHAPELY_REQUIREMENT}'); elsewhere pip install {SHAPELY_REQUIREMENT}."
        ) from exc
    return shapely


# -- margins in the contour frame ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlaneMargins:
    """Margins (mm) along the contour frame: towards +u, -u, +v, -v (in-plane) and +n, -n (normal)."""

    u_pos: float
    u_neg: float
    v_pos: float
    v_neg: float
    n_pos: float
    n_neg: float

    @property
    def symmetric_in_plane(self) -> bool:
        return self.u_pos == self.u_neg and self.v_pos == self.v_neg


def plane_margins(structure, margins: Margins) -> PlaneMargins:
    """``margins`` (patient directions) in the frame of ``structure``'s contour planes. The planes must be
    axial, sagittal or coronal (each frame axis along a patient axis); otherwise a ContourMarginError."""
    r_pos = (margins.R, margins.A, margins.S)  # towards +x, +y, +z (RAS)
    r_neg = (margins.L, margins.P, margins.I)
    out = []
    for vec in structure.basis:
        a = int(np.argmax(np.abs(vec)))
        if abs(vec[a]) < 1.0 - 1e-6:
            raise ContourMarginError(
                f"Structure {structure.name}: its contour planes are oblique (normal {np.round(structure.normal, 4)}); "
                "margins in patient directions on contours need axial, sagittal or coronal planes."
            )
        out += [r_pos[a], r_neg[a]] if vec[a] > 0 else [r_neg[a], r_pos[a]]
    return PlaneMargins(*out)


# -- regions of the planes -----------------------------------------------------------------------------


#: Precision grid (mm) of the snap-rounding overlay a union falls back to (``_union``).
GRID_MM = 1e-6


def _pairwise_union(shp, geoms: np.ndarray):
    t = np.asarray(geoms, dtype=object)
    while len(t) > 1:
        if len(t) % 2:
            t = np.append(t, shp.Polygon())
        t = shp.union(t[0::2], t[1::2])
    return t[0]


def _union(shp, geoms):
    """The union of polygons, checked: pairwise floating overlays (fast), kept when every vertex of every input
    lies in the result; otherwise the snap-rounding overlay on a ``GRID_MM`` grid (robust). GEOS 3.11's floating
    overlays can silently drop parts of a union of many overlapping pieces; a dropped part leaves input vertices
    outside the result."""
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return shp.Polygon()
    if len(geoms) == 1:
        return geoms[0]
    arr = np.array(geoms, dtype=object)
    u = _pairwise_union(shp, arr)
    pts = shp.get_coordinates(arr)
    shp.prepare(u)
    if not np.all(shp.intersects_xy(u, pts[:, 0], pts[:, 1])):
        u = shp.union_all(arr, grid_size=GRID_MM)
    return u


def _polygonal(shp, geom):
    """The polygonal part of ``geom`` (make_valid may return lines and points too)."""
    parts = [g for g in shp.get_parts(geom) if shp.get_type_id(g) in (3, 6)]
    return _union(shp, parts)


def _ring_polygon(shp, ring: np.ndarray):
    pts = np.asarray(ring, dtype=np.float64)
    if len(pts) > 1 and np.allclose(pts[0], pts[-1]):
        pts = pts[:-1]
    if len(pts) < 3:
        return None
    poly = shp.Polygon(pts)
    if not poly.is_valid:  # a keyhole contour (a cut out to a hole and back), a bow-tie: even-odd as drawn
        poly = _polygonal(shp, shp.make_valid(poly))
    return None if poly.is_empty or poly.area <= 0 else poly


_REGIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # structure -> its plane regions


def plane_regions(structure) -> List[object]:
    """Per plane, its region as a shapely geometry (u, v mm): the rings by the even-odd rule minus the
    explicit holes, as ``dose.contours`` reads them (computed once per structure)."""
    try:
        return list(_REGIONS[structure])
    except (KeyError, TypeError):
        pass
    out = _plane_regions(structure)
    try:
        _REGIONS[structure] = tuple(out)
    except TypeError:  # not weakly referenceable: not cached
        pass
    return out


def _plane_regions(structure) -> List[object]:
    shp = _shapely()
    out = []
    for plane in structure.planes:
        region, holes = shp.Polygon(), []
        for ring, hole in zip(plane.rings, plane.holes):
            poly = _ring_polygon(shp, ring)
            if poly is None:
                continue
            if hole:
                holes.append(poly)
            else:
                region = region.symmetric_difference(poly)
        if holes and not region.is_empty:
            region = region.difference(_union(shp, holes))
        out.append(_polygonal(shp, region) if not region.is_empty else region)
    return out


def _slabs(structure) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    z = np.array([p.position_mm for p in structure.planes])
    lo = z - np.array([p.below_mm for p in structure.planes])
    hi = z + np.array([p.above_mm for p in structure.planes])
    return z, lo, hi


def _merge(intervals: Sequence[Tuple[float, float]]) -> List[Tuple[float, float]]:
    out: List[List[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + TOL_MM:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def slice_positions(geometry: ImageGeometry, normal: Sequence[float]) -> Optional[np.ndarray]:
    """Positions (mm along ``normal``) of the slices of ``geometry`` when its slice axis (k) runs along the
    contour normal; None otherwise (the contours do not lie in its slices)."""
    n = np.asarray(normal, dtype=np.float64)
    k_dir = geometry.direction_matrix[:, 2]
    if abs(abs(float(k_dir @ n)) - 1.0) > 1e-6:
        return None
    ijk = np.zeros((geometry.shape[0], 3))
    ijk[:, 2] = np.arange(geometry.shape[0])
    return np.sort(geometry.ijk_to_ras_points(ijk) @ n)


def _natural_slabs(positions: np.ndarray, spacing: float) -> Tuple[np.ndarray, np.ndarray]:
    """Slab extents (below, above) of planes at ``positions`` as a reader of an RTSTRUCT takes them
    (``dose.contours``): half way to a neighbour within 1.5 spacings, half a spacing at an end or a gap (the
    median gap, or ``spacing`` for a single plane)."""
    gaps = np.diff(positions)
    s = float(np.median(gaps)) if len(gaps) else float(spacing)
    half = 0.5 * np.where(gaps <= 1.5 * s, gaps, s)
    below = np.concatenate([[0.5 * s], half])
    above = np.concatenate([half, [0.5 * s]])
    return below, above


def _layout_exact(positions: np.ndarray, support: Sequence[Tuple[float, float]], spacing: float):
    """Planes (position, below, above) that tile each stretch of the support: the positions whose natural
    slab lies within it, and for each end piece left over one extra plane at its centre (a stretch without a
    whole slab gets one plane at its centre): every plane stands at the centre of its slab, and the ends are
    where the grown solid ends."""
    nat_below, nat_above = _natural_slabs(positions, spacing)
    slab_lo, slab_hi = positions - nat_below, positions + nat_above
    zs, lo, hi = [], [], []
    for a, b in support:
        full = np.flatnonzero((slab_lo >= a - TOL_MM) & (slab_hi <= b + TOL_MM))
        if len(full) == 0:
            zs.append([0.5 * (a + b)])
            lo.append([a])
            hi.append([b])
            continue
        z, bottom, top = list(positions[full]), list(slab_lo[full]), list(slab_hi[full])
        if bottom[0] > a + TOL_MM:
            z, bottom, top = [0.5 * (a + bottom[0])] + z, [a] + bottom, [bottom[0]] + top
        if top[-1] < b - TOL_MM:
            z, bottom, top = z + [0.5 * (top[-1] + b)], bottom + [top[-1]], top + [b]
        zs.append(z)
        lo.append(bottom)
        hi.append(top)
    z, lo, hi = (np.concatenate([np.asarray(x, dtype=np.float64) for x in v]) for v in (zs, lo, hi))
    return z, z - lo, hi - z


def _layout_on_positions(positions: np.ndarray, support: Sequence[Tuple[float, float]], spacing: float):
    """Planes at the positions within the support only (what an RTSTRUCT on the CT slices can hold), with the
    slabs a reader gives them (``_natural_slabs``)."""
    inside = np.zeros(len(positions), dtype=bool)
    for a, b in support:
        inside |= (positions >= a - TOL_MM) & (positions <= b + TOL_MM)
    z = positions[inside]
    if len(z) == 0:
        return z, z, z
    below, above = _natural_slabs(z, spacing)
    return z, below, above


# -- in-plane offsets ----------------------------------------------------------------------------------


def ellipse_polygon(m: PlaneMargins, n: int = ELLIPSE_SEGMENTS) -> np.ndarray:
    """(n, 2) vertices (counter-clockwise in u, v) on the in-plane margin ellipse: in each quadrant the
    quarter-ellipse of that quadrant's margins."""
    t = 2.0 * np.pi * np.arange(n) / n
    c, s = np.cos(t), np.sin(t)
    c[np.abs(c) < 1e-15] = 0.0
    s[np.abs(s) < 1e-15] = 0.0
    return np.column_stack([np.where(c >= 0, m.u_pos, m.u_neg) * c, np.where(s >= 0, m.v_pos, m.v_neg) * s])


def _rings_of(shp, geom) -> List[np.ndarray]:
    rings = []
    for poly in shp.get_parts(geom):
        if shp.get_type_id(poly) != 3:
            continue
        for ring in [poly.exterior, *poly.interiors]:
            c = np.asarray(ring.coords)[:-1]
            if len(c) >= 3:
                rings.append(c)
    return rings


#: Largest turning (radians) of the ring within one strip of ``minkowski_pieces``.
_STRIP_TURN = 0.5 * np.pi


def minkowski_pieces(shp, region, pattern: np.ndarray) -> List[object]:
    """Polygons whose union with ``region`` is ``region`` + ``pattern`` (a convex polygon holding the origin,
    counter-clockwise). With the region on the left of every ring (exteriors counter-clockwise, holes
    clockwise): each edge swept outwards to the pattern's support point along its outward normal, and at each
    convex vertex the pattern's boundary between the supports of its two edge normals. (A point of the sum
    outside the region is reached from its nearest boundary point, in the pattern's gauge: from an edge's
    interior along the support of the outward normal, or from a convex vertex within its normal cone.) Runs of
    edges joined by convex vertices (turning at most 90 degrees) make one strip: the run and its swept outer
    chain; a strip that is not a simple polygon is replaced by its pieces."""
    from shapely.geometry.polygon import orient

    pieces = []
    m = len(pattern)
    for part in shp.get_parts(region):
        if shp.get_type_id(part) != 3:
            continue
        for ring in _rings_of(shp, orient(part, 1.0)):
            a = ring
            d = np.roll(ring, -1, axis=0) - a
            keep = np.hypot(d[:, 0], d[:, 1]) > 1e-9
            a, d = a[keep], d[keep]
            if len(a) < 3:
                continue
            pieces.extend(_ring_pieces(shp, a, d, pattern, m))
    return pieces


def _fan(vertex: np.ndarray, pattern: np.ndarray, i1: int, i2: int) -> Optional[np.ndarray]:
    """The pattern's boundary from index i1 to i2 (counter-clockwise) placed at ``vertex``, closed by the vertex."""
    m = len(pattern)
    count = (i2 - i1) % m + 1
    if count < 2:
        return None
    return np.concatenate([vertex[None, :], vertex + pattern[(i1 + np.arange(count)) % m]])


def _ring_pieces(shp, a: np.ndarray, d: np.ndarray, pattern: np.ndarray, m: int) -> List[object]:
    n = len(a)
    normal = np.column_stack([d[:, 1], -d[:, 0]])  # outward: the region is on the left
    ip = np.argmax(normal @ pattern.T, axis=1)
    before = np.roll(d, 1, axis=0)
    cross = before[:, 0] * d[:, 1] - before[:, 1] * d[:, 0]
    convex = cross > 0  # at vertex e, between edges e-1 and e
    turn = np.where(convex, np.arctan2(cross, np.sum(before * d, axis=1)), 0.0)
    # split the cycle of edges into runs: before edge e when vertex e is reflex or the run turned too far
    starts = []
    start = int(np.flatnonzero(~convex)[0]) if (~convex).any() else 0
    acc = 0.0
    for k in range(n):
        e = (start + k) % n
        if k == 0 or not convex[e] or acc + turn[e] > _STRIP_TURN:
            starts.append(e)
            acc = 0.0
        else:
            acc += turn[e]
    out, fans = [], []
    for r, e0 in enumerate(starts):
        length = ((starts[(r + 1) % len(starts)] - e0 - 1) % n) + 1 if len(starts) > 1 else n
        edges = (e0 + np.arange(length)) % n
        inner = np.concatenate([a[edges], (a[edges[-1]] + d[edges[-1]])[None, :]])
        outer = []
        for idx, e in enumerate(edges):
            outer.append(a[e] + pattern[ip[e]])
            outer.append(a[e] + d[e] + pattern[ip[e]])
            if idx + 1 < length:
                nxt = edges[idx + 1]
                inside = (ip[e] + 1 + np.arange((ip[nxt] - ip[e]) % m - 1 if (ip[nxt] - ip[e]) % m else 0)) % m
                outer.extend(a[nxt] + pattern[inside])
        strip = shp.Polygon(np.concatenate([inner, np.array(outer)[::-1]]))
        if strip.is_valid:
            out.append(strip)
        else:  # the run's pieces one by one
            for idx, e in enumerate(edges):
                out.append(shp.Polygon([a[e], a[e] + d[e], a[e] + d[e] + pattern[ip[e]], a[e] + pattern[ip[e]]]))
                if idx + 1 < length:
                    fan = _fan(a[edges[idx + 1]], pattern, ip[e], ip[edges[idx + 1]])
                    if fan is not None:
                        fans.append(fan)
        if convex[e0]:  # the vertex where this run starts, after the previous run
            fan = _fan(a[e0], pattern, ip[(e0 - 1) % n], ip[e0])
            if fan is not None:
                fans.append(fan)
    out.extend(shp.Polygon(f) for f in fans)
    return out


def _sections(regions, pairs_plane, pairs_source, pairs_scale, n_out: int, m: PlaneMargins) -> List[object]:
    """Per output plane, the union over its (source plane, scale) pairs of the source region grown by the
    in-plane margin ellipse scaled by ``scale``."""
    shp = _shapely()
    src = np.asarray(regions, dtype=object)[pairs_source]
    ru, rv = m.u_pos, m.v_pos
    if m.symmetric_in_plane and (ru > 0) == (rv > 0):
        if ru > 0:
            k = ru / rv
            scaled = shp.transform(src, lambda c: c * np.array([1.0, k]))
            grown = shp.buffer(scaled, ru * pairs_scale, quad_segs=QUAD_SEGS)
        else:
            grown = src
        per = np.bincount(pairs_plane, minlength=n_out)
        table = np.full((n_out, max(int(per.max(initial=0)), 1)), None, dtype=object)
        order = np.argsort(pairs_plane, kind="stable")
        rows = pairs_plane[order]
        table[rows, np.arange(len(rows)) - (np.cumsum(per) - per)[rows]] = grown[order]
        out = np.array([_union(shp, row) for row in table], dtype=object)
        if ru > 0:
            out = shp.transform(out, lambda c: c * np.array([1.0, 1.0 / k]))
        return list(out)
    pattern = ellipse_polygon(m)
    out = []
    for p in range(n_out):
        sel = np.flatnonzero(pairs_plane == p)
        pieces = []
        for g, s in zip(src[sel], pairs_scale[sel]):
            pieces.append(g)
            if s > 0:
                pieces.extend(minkowski_pieces(shp, g, pattern * s))
        out.append(_union(shp, pieces))
    return out


# -- structures ----------------------------------------------------------------------------------------


def structure_from_regions(
    name: str, source, positions, regions, below, above, end_caps: str = EXACT_ENDS, spacing=None
):
    """A ``ContourStructure`` with ``source``'s normal from shapely regions (u, v mm) at ``positions`` with
    the given slab extents; planes whose region is empty are left out."""
    from ..dose.contours import ContourPlane, ContourStructure

    shp = _shapely()
    planes = []
    for z, region, b, a in zip(positions, regions, below, above):
        if region is None or region.is_empty:
            continue
        rings = tuple(np.ascontiguousarray(r) for r in _rings_of(shp, region))
        if rings:
            planes.append(ContourPlane(float(z), rings, tuple(False for _ in rings), float(b), float(a)))
    if spacing is None:
        gaps = np.diff(np.sort(np.asarray(positions, dtype=float)))
        gaps = gaps[gaps > TOL_MM]
        spacing = float(np.median(gaps)) if len(gaps) else float(source.slice_spacing_mm)
    return ContourStructure(name, tuple(planes), tuple(source.normal), float(spacing), end_caps)


def expand_contours(
    source,
    margins: Margins,
    positions: Optional[Sequence[float]] = None,
    extent: Optional[Tuple[float, float]] = None,
    name: str = "",
):
    """The exact expansion of contour structure ``source`` by ``margins`` (module docstring) as a
    ``ContourStructure``: planes at ``positions`` (mm along the contour normal, e.g. the planning CT's
    slices, ``slice_positions``; by default the source's plane spacing continued beyond its ends), each at the
    centre of its slab, with extra planes in the end pieces, so that the solid ends where the grown solid
    ends; clipped to ``extent`` (lo, hi mm along the normal; a GeometryWarning when that cuts the margin off
    where the source itself does not reach)."""
    return grow_contours(source, margins, positions, extent, name)[0]


def grow_contours(
    source,
    margins: Margins,
    positions: Optional[Sequence[float]] = None,
    extent: Optional[Tuple[float, float]] = None,
    name: str = "",
):
    """(exact, on_positions): the expansion of ``expand_contours``, and the same sections at ``positions``
    only (the planes an RTSTRUCT on the CT slices holds, with the slabs a reader gives them)."""
    name = name or source.name
    m = plane_margins(source, margins)
    regions = plane_regions(source)
    z, lo, hi = _slabs(source)
    has_area = np.array([not r.is_empty for r in regions])
    if not has_area.any():
        raise ContourMarginError(f"Structure {source.name}: its contours enclose no area; it cannot be expanded.")
    support = _merge([(a - m.n_neg, b + m.n_pos) for a, b, ok in zip(lo, hi, has_area) if ok])
    if extent is not None:
        e_lo, e_hi = float(extent[0]), float(extent[1])
        cut = [
            side
            for side, hit in (
                ("the first", support[0][0] < e_lo - TOL_MM and lo[has_area].min() > e_lo + TOL_MM),
                ("the last", support[-1][1] > e_hi + TOL_MM and hi[has_area].max() < e_hi - TOL_MM),
            )
            if hit
        ]
        if cut:
            warnings.warn(
                f"{name}: the margin reaches beyond {' and '.join(cut)} slice of the image (contours from "
                f"{e_lo:.2f} to {e_hi:.2f} mm along the slice normal); the result is clipped there. Use an image that "
                "extends beyond the margin to keep it whole.",
                GeometryWarning,
                stacklevel=3,
            )
        support = [(max(a, e_lo), min(b, e_hi)) for a, b in support]
        support = [(a, b) for a, b in support if b > a + TOL_MM]
        if not support:
            raise ContourMarginError(f"Structure {source.name} lies outside the image extent; nothing to expand.")
    if positions is None:
        s = float(source.slice_spacing_mm)
        base = float(z[0])
        first = np.floor((support[0][0] - base) / s - 1e-9)
        last = np.ceil((support[-1][1] - base) / s + 1e-9)
        positions = base + s * np.arange(first - 1, last + 2)
    positions = np.unique(np.asarray(positions, dtype=np.float64))
    spacing = float(np.median(np.diff(positions))) if len(positions) > 1 else float(source.slice_spacing_mm)
    layouts = [_layout_exact(positions, support, spacing), _layout_on_positions(positions, support, spacing)]
    wanted = np.unique(np.concatenate([lay[0] for lay in layouts]))

    # which source slabs reach each wanted plane, and at which in-plane scale
    src = np.flatnonzero(has_area)
    up = wanted[:, None] - hi[None, src]  # > 0: the plane is above the slab (margin towards +n)
    down = lo[None, src] - wanted[:, None]
    dist = np.maximum(np.maximum(up, down), 0.0)
    r_n = np.where(up > 0, m.n_pos, m.n_neg)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(dist <= TOL_MM, 0.0, np.where(r_n > 0, dist / np.where(r_n > 0, r_n, 1.0), np.inf))
    plane_idx, col = np.nonzero(frac <= 1.0 + 1e-9)
    scale = np.sqrt(np.clip(1.0 - frac[plane_idx, col] ** 2, 0.0, 1.0))
    sections = _sections(regions, plane_idx, src[col], scale, len(wanted), m)
    out = []
    for (pz, below, above), caps in zip(layouts, (EXACT_ENDS, "half-slice")):
        regions_at = [sections[int(i)] for i in np.searchsorted(wanted, pz)]
        out.append(structure_from_regions(name, source, pz, regions_at, below, above, caps, spacing))
    return out[0], out[1]


def same_normal(a, b) -> bool:
    """True when contour structures ``a`` and ``b`` lie in parallel planes (the same frame)."""
    return bool(np.allclose(np.asarray(a.normal), np.asarray(b.normal), atol=1e-6))


def mask_to_contours(mask: Mask, normal: Sequence[float], name: str = ""):
    """The voxel cubes of ``mask`` as a contour structure: per slice the union of its pixel squares, as thick as
    the slice (exactly the cubes' union), for a grid whose slice axis runs along ``normal``; None otherwise."""
    from ..dose.contours import ContourStructure

    g = mask.geometry
    n = np.asarray(normal, dtype=np.float64)
    if slice_positions(g, n) is None:
        return None
    shp = _shapely()
    frame = ContourStructure(name or mask.name, (), tuple(float(x) for x in n), float(g.spacing[2]), "none")
    u, v, _ = frame.basis
    half = 0.5 * float(g.spacing[2])
    zs, regions = [], []
    for k in np.flatnonzero(mask.array.any(axis=(1, 2))):
        a = np.pad(mask.array[k], ((0, 0), (1, 1)))
        edges = np.diff(a.astype(np.int8), axis=1)
        j0, i0 = np.nonzero(edges == 1)
        j1, i1 = np.nonzero(edges == -1)  # row-major order: the runs pair up in order
        corners = np.stack(
            [
                np.column_stack([i0 - 0.5, j0 - 0.5]),
                np.column_stack([i1 - 0.5, j0 - 0.5]),
                np.column_stack([i1 - 0.5, j0 + 0.5]),
                np.column_stack([i0 - 0.5, j0 + 0.5]),
            ],
            axis=1,
        ).reshape(-1, 2)
        ras = g.ijk_to_ras_points(np.column_stack([corners, np.full(len(corners), float(k))]))
        uv = np.column_stack([ras @ u, ras @ v]).reshape(-1, 4, 2)
        regions.append(_union(shp, shp.polygons(uv)))
        zs.append(float(g.ijk_to_ras_points(np.array([[0.0, 0.0, float(k)]]))[0] @ n))
    zs = np.asarray(zs)
    return structure_from_regions(
        name or mask.name, frame, zs, regions, np.full(len(zs), half), np.full(len(zs), half), "none", 2 * half
    )


def subtract_contours(structure, cuts: Sequence[object], name: str = ""):
    """``structure`` minus ``cuts`` (contour structures with the same plane normal): from each plane the regions
    of every cut plane whose slab overlaps its slab, so that the result is disjoint from every cut's solid."""
    shp = _shapely()
    name = name or structure.name
    for c in cuts:
        if not same_normal(structure, c):
            raise ContourMarginError(
                f"{c.name} is contoured on other planes than {structure.name}; it cannot be subtracted on contours."
            )
    regions = plane_regions(structure)
    z, lo, hi = _slabs(structure)
    cut_parts = [(plane_regions(c), *_slabs(c)[1:]) for c in cuts]
    out = []
    for r, a, b in zip(regions, lo, hi):
        pieces = [
            cr
            for c_regions, c_lo, c_hi in cut_parts
            for cr, ca, cb in zip(c_regions, c_lo, c_hi)
            if not cr.is_empty and ca < b - TOL_MM and cb > a + TOL_MM
        ]
        if pieces and not r.is_empty:
            r = r.difference(_union(shp, pieces))
        out.append(r)
        out[-1] = _polygonal(shp, out[-1]) if not out[-1].is_empty else out[-1]
    below = np.array([p.below_mm for p in structure.planes])
    above = np.array([p.above_mm for p in structure.planes])
    return structure_from_regions(
        name, structure, z, out, below, above, end_caps=structure.end_caps, spacing=structure.slice_spacing_mm
    )


def rasterize(structure, geometry: ImageGeometry, name: str = "") -> Mask:
    """The labelmap of contour structure ``structure`` on ``geometry``: a voxel is in when its centre lies in
    the structure's solid (a plane's slab holds a centre when lo <= w < hi, and in-plane the even-odd rule with
    half-open crossings, as ``caseio.rtstruct_read`` rasterises ROIs). Parts outside the grid are left out."""
    name = name or structure.name
    out = np.zeros(geometry.shape, dtype=bool)
    if not structure.planes:
        return Mask(out, geometry, name)
    u, v, n = structure.basis
    z, lo, hi = _slabs(structure)
    order = np.argsort(lo)

    def plane_at(w: np.ndarray) -> np.ndarray:
        """Index of the plane whose slab holds each w, or -1."""
        w = w + 1e-6
        i = np.searchsorted(lo[order], w, side="right") - 1
        p = order[np.maximum(i, 0)]
        return np.where((i >= 0) & (w < hi[p]), p, -1)

    def ras(plane, ring):
        return ring[:, :1] * u + ring[:, 1:2] * v + plane.position_mm * n

    if slice_positions(geometry, n) is not None:  # the planes lie in the grid's slices: a scanline per slice
        from ..caseio.rtstruct_read import even_odd_fill

        nk, nj, ni = geometry.shape
        ks = np.zeros((nk, 3))
        ks[:, 2] = np.arange(nk)
        for k, p in enumerate(plane_at(geometry.ijk_to_ras_points(ks) @ n)):
            if p < 0:
                continue
            plane = structure.planes[p]
            rings = [geometry.ras_to_ijk_points(ras(plane, r))[:, :2] for r in plane.rings]
            pts = np.concatenate(rings)
            i0, j0 = np.maximum(np.floor(pts.min(axis=0)).astype(int), 0)
            i1, j1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 1, (ni, nj))
            if i1 <= i0 or j1 <= j0:
                continue
            shift = np.array([i0, j0], dtype=np.float64)
            out[k, j0:j1, i0:i1] |= even_odd_fill([r - shift for r in rings], (j1 - j0, i1 - i0))
        return Mask(out, geometry, name)

    shp = _shapely()  # planes across the grid's slices: every voxel centre of the bounding box is placed
    pts = np.concatenate(
        [ras(p, r) + d * n for p, a, b in zip(structure.planes, lo - z, hi - z) for r in p.rings for d in (a, b)]
    )
    ijk = geometry.ras_to_ijk_points(pts)
    shape_ijk = np.array(geometry.shape[::-1])
    box_lo = np.clip(np.floor(ijk.min(axis=0)).astype(int), 0, shape_ijk)
    box_hi = np.clip(np.ceil(ijk.max(axis=0)).astype(int) + 1, 0, shape_ijk)
    if np.any(box_hi <= box_lo):
        return Mask(out, geometry, name)
    ii, jj, kk = np.meshgrid(*[np.arange(a, b) for a, b in zip(box_lo, box_hi)], indexing="ij")
    idx = np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()])
    centres = geometry.ijk_to_ras_points(idx.astype(np.float64))
    slab = plane_at(centres @ n)
    regions = plane_regions(structure)
    uu, vv = centres @ u, centres @ v
    for p in np.unique(slab[slab >= 0]):
        sel = np.flatnonzero(slab == p)
        shp.prepare(regions[p])
        hit = idx[sel[shp.contains_xy(regions[p], uu[sel], vv[sel])]]
        out[hit[:, 2], hit[:, 1], hit[:, 0]] = True
    return Mask(out, geometry, name)
