"""Exact margins in patient directions: the rules for labelmap sources (this module) and for contour
sources (computed in ``geometry.contour_margins``).

One geometry per source
-----------------------
A planning volume takes the geometry of its source. A source that comes as a labelmap (voxels) is grown
by the cube rule below and gives a labelmap. A source that comes as planar contours (an RTSTRUCT's ROIs,
``dose.contours.ContourStructure``) is grown on its polygons and gives contours (rasterised only for
display and storage): the DVH, the export and the report all use those contours. A volume built from both
kinds (a contour CTV, a labelmap canal) says in its recipe which rule each part used.

Rule for contour sources
------------------------
The source is the slab model of ``dose.contours``: each planar contour region P_i (even-odd rings, minus
holes) stands for the slab [lo_i, hi_i] along the contour normal (half way to its neighbours, half a
slice beyond an end contour). The result is the Minkowski sum of that solid with the same margin
ellipsoid as below, cut on planes. On the plane at height z its section is the union, over the source's
slabs within reach, of P_i grown in-plane by the ellipse of the in-plane margins scaled by
sqrt(1 - (d_i / r)^2), where d_i = max(lo_i - z, z - hi_i, 0) is the distance from the plane to the nearest
point of the slab and r the margin on that side (S above, I below for axial contours): for 2 mm axial and
5 mm S-I, 2 mm at distance 0, shrinking to 0 at 5 mm. Asymmetric forms grow each quadrant of the plane by
its own quarter-ellipse (R or L with A or P) and use S above, I below. Planes lie on the planning CT's
slices, each at the centre of its slab; the end slabs end exactly where the grown solid ends (a 5 mm S-I
margin ends 5 mm beyond the source's end slabs, not at the next whole slice), with one extra plane at the
centre of each end piece that no whole CT slab covers. Arcs are drawn with vertices on the arc, 128
segments per turn: the offset is short by at most 3e-4 of the margin (well within 0.1% in area).
PTV_Eval removes from each PTV plane every canal plane whose slab overlaps its slab (disjoint from the
canal's solid). The cord PRV is the same rule with a ball. Contours must lie in axial, sagittal or coronal
planes (margins are in patient directions); oblique contour planes are grown by the cube rule on their
rasterised labelmap, and the recipe says so. What this gives: flat faces grow by exactly the margin, and
curved surfaces by exactly the margin in-plane (a 5 mm cord + 2 mm is a 7 mm cylinder, not +4%); along
the slices the solid is the slab model's, sampled at the plane centres (a box CTV's 2/2/5 mm PTV is within
0.2% of its Minkowski volume on 1.25-3 mm slices).

Exactness rule (labelmap sources)
---------------------------------
A voxel belongs to the expansion of a source mask by margins (R, L, A, P, S, I) iff its centre lies
within the margin distance of the source *region*, where the region is the union of the source voxels'
closed cubes and the distance is ellipsoidal: a point x is within reach of a region point y when
``sum((x_a - y_a) / r_a)^2 <= 1`` over the patient axes a, with r_a the margin on the side of y that x
lies on (for example r = S when x is superior to y; a zero margin allows no step that way). Margins are
not snapped to whole voxels. Patient directions come from the grid's direction matrix, so "superior"
means superior on permuted, flipped and oblique grids alike.

What the rule means for volumes: faces of the staircase grow by exactly the margin, but on a curved
surface the cubes' corners stick out of the smooth shape, so the result is larger than the smooth
Minkowski sum, as if the margin were about 0.4 mm larger on a 0.98 x 0.98 x 1.25 mm grid (cord + 2 mm:
+4% in volume; a sphere of radius R grown by m: about +1.5 mm / (R + m), +12% for R 10 mm). It never errs
on the small side, unlike margins measured between voxel centres (Slicer's Margin effect: -9% for the cord).

How it is computed (labelmaps)
------------------------------
Every voxel cube is a translate of one cube and voxel centres form a lattice, so whether the centre of
voxel x is within reach of the cube of voxel v depends only on the index offset w = x - v. The
expansion is therefore the binary dilation of the mask by the *footprint* K, the set of integer offsets
w whose cube lies within reach (``footprint``). K is computed exactly once per grid orientation,
spacing and margins (and cached):

* axis-aligned grids (array axes along patient axes, permuted and/or flipped allowed): the nearest point
  of a cube is found axis by axis (clamping), so an offset of n voxels along an axis of spacing s costs
  ``((|n| - 1/2) s / r)^2`` (0 for n = 0) and K is where the three costs sum to at most 1;
* oblique grids: in metric units ``e = d / r`` (d the patient-space step from region point to voxel
  centre) the margin is the unit ball and the cube a parallelepiped, so the test is "the minimum-norm
  point of a small polytope has norm <= 1". It is solved exactly by enumerating active constraint sets
  (the minimum-norm point is the projection of the origin onto the affine hull of at most three
  linearly independent active faces; every candidate is checked for feasibility; sets with a condition
  number above 1e12 count as dependent). Asymmetric margins split the axes whose two sides differ into
  half-spaces (octants), each with its own semi-axes.

The dilation runs on the structure's bounding box plus the margin reach, as runs of the footprint along
one axis (shift-and-OR of booleans). Results are exact up to a tolerance of 1e-9 on the normalised
distance (ties count as inside).

Shrinking by m is the complement of the expansion of the complement by m (the same rule applied to the
outside region, with the sides mirrored). Results are clipped to the input grid; for a shrink the region
beyond the grid counts as outside. A GeometryWarning says when the grid edge changed a result.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Optional, Tuple

import numpy as np

from ..warnings import GeometryWarning
from .grid import ImageGeometry
from .masks import Mask

_SIDES = ("R", "L", "A", "P", "S", "I")
_TOL = 1e-9  # on the normalised distance and on cube-face constraints (index units)
_ALIGNED_TOL = 1e-9  # direction cosines this close to 0 or 1 count as axis-aligned


@dataclass(frozen=True)
class Margins:
    """Margins in mm towards each patient direction."""

    R: float
    L: float
    A: float
    P: float
    S: float
    I: float  # noqa: E741 - the patient direction "inferior"

    def __post_init__(self) -> None:
        for side in _SIDES:
            v = float(getattr(self, side))
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"Margin {side} must be a finite number of mm >= 0; got {getattr(self, side)}.")
            object.__setattr__(self, side, v)

    @classmethod
    def isotropic(cls, mm: float) -> Margins:
        return cls(mm, mm, mm, mm, mm, mm)

    @classmethod
    def axial_si(cls, axial_mm: float, si_mm: float) -> Margins:
        """The common form "2 mm axial (R, L, A, P), 5 mm superior-inferior"."""
        return cls(axial_mm, axial_mm, axial_mm, axial_mm, si_mm, si_mm)

    @classmethod
    def parse(cls, text: str) -> Margins:
        """Parse "m" (isotropic), "LR,AP,SI" or "R,L,A,P,S,I" (mm)."""
        try:
            values = [float(v) for v in str(text).replace(" ", "").split(",") if v != ""]
        except ValueError:
            raise ValueError(f"Margins '{text}' are not numbers; give mm as m, LR,AP,SI or R,L,A,P,S,I.") from None
        if len(values) == 1:
            return cls.isotropic(values[0])
        if len(values) == 3:
            lr, ap, si = values
            return cls(lr, lr, ap, ap, si, si)
        if len(values) == 6:
            return cls(*values)
        raise ValueError(f"Margins '{text}': give 1, 3 (LR,AP,SI) or 6 (R,L,A,P,S,I) values in mm.")

    def as_tuple(self) -> Tuple[float, ...]:
        return tuple(getattr(self, s) for s in _SIDES)

    @property
    def is_zero(self) -> bool:
        return max(self.as_tuple()) == 0.0

    @property
    def is_symmetric(self) -> bool:
        return self.R == self.L and self.A == self.P and self.S == self.I

    def describe(self) -> str:
        if len(set(self.as_tuple())) == 1:
            return f"{self.R:g} mm"
        if self.is_symmetric and self.R == self.A:
            return f"{self.R:g} mm axial, {self.S:g} mm SI"
        return ", ".join(f"{s} {getattr(self, s):g}" for s in _SIDES) + " mm"


# -- footprint ---------------------------------------------------------------------------------------


def footprint(geometry: ImageGeometry, margins: Margins) -> np.ndarray:
    """Integer offsets (numpy order k, j, i) by which a voxel's cube reaches other voxel centres.

    A read-only boolean array of odd shape whose centre element is offset (0, 0, 0): ``fp[c + w]`` is
    True iff the centre of voxel ``v + w`` lies within ``margins`` of the cube of voxel ``v``.
    """
    return _footprint_cached(geometry.directions, geometry.spacing, margins.as_tuple(), _is_aligned(geometry))


def _is_aligned(geometry: ImageGeometry) -> bool:
    d = np.abs(geometry.direction_matrix)
    return bool(np.all((d < _ALIGNED_TOL) | (d > 1 - _ALIGNED_TOL)))


@lru_cache(maxsize=64)
def _footprint_cached(directions, spacing, sides, aligned: bool) -> np.ndarray:
    d = np.asarray(directions, dtype=float)
    s = np.asarray(spacing, dtype=float)
    r_pos = np.array(sides[0::2], dtype=float)  # R, A, S: towards +x, +y, +z (RAS)
    r_neg = np.array(sides[1::2], dtype=float)  # L, P, I
    fp_ijk = _footprint_aligned(d, s, r_pos, r_neg) if aligned else _footprint_oblique(d, s, r_pos, r_neg)
    fp = np.ascontiguousarray(fp_ijk.transpose(2, 1, 0))
    fp.setflags(write=False)
    return fp


def _footprint_aligned(d: np.ndarray, s: np.ndarray, r_pos: np.ndarray, r_neg: np.ndarray) -> np.ndarray:
    """Footprint in (i, j, k) order on a grid whose axes run along patient axes: costs add per axis."""
    costs = []
    for b in range(3):  # index axis i, j, k
        a = int(np.argmax(np.abs(d[:, b])))  # its patient axis
        up, down = (r_pos[a], r_neg[a]) if d[a, b] > 0 else (r_neg[a], r_pos[a])  # towards +index, -index
        n = int(np.floor(max(up, down) / s[b] + 0.5 + _TOL))
        w = np.arange(-n, n + 1)
        gap = np.maximum(np.abs(w) - 0.5, 0.0) * s[b]  # mm from the cube face to the voxel centre
        r = np.where(w > 0, up, down)
        with np.errstate(divide="ignore", over="ignore"):
            cost = np.where(gap == 0, 0.0, np.where(r > 0, (gap / np.where(r > 0, r, 1.0)) ** 2, np.inf))
        costs.append(cost)
    ci, cj, ck = costs
    return ci[:, None, None] + cj[None, :, None] + ck[None, None, :] <= 1.0 + _TOL


def _footprint_oblique(d: np.ndarray, s: np.ndarray, r_pos: np.ndarray, r_neg: np.ndarray) -> np.ndarray:
    """Footprint in (i, j, k) order on any grid, by exact minimum-norm points (see the module docstring).

    For offset w (index units) and a region point ``v + u`` with u in the cube [-1/2, 1/2]^3, the patient
    step is ``dvec = P (w - u)`` with ``P = directions * spacing``. In metric units ``dvec = rho * e``, so
    ``u = w - B e`` with ``B = P^-1 diag(rho)``. Offset w is in the footprint iff
    ``min |e|^2 <= 1`` subject to ``|w - B e| <= 1/2`` (per index axis) and, for a split axis a,
    ``sigma_a e_a >= 0``.
    """
    p_inv = np.linalg.inv(d * s)
    r_max = np.maximum(r_pos, r_neg)
    reach = np.floor(np.sqrt(((p_inv * r_max) ** 2).sum(axis=1)) + 0.5 + _TOL).astype(int)  # per i, j, k
    axes = np.meshgrid(*[np.arange(-n, n + 1) for n in reach], indexing="ij")
    w = np.stack([g.ravel() for g in axes]).astype(float)  # 3 x N
    inside = np.all(w == 0, axis=0)  # the voxel's own centre
    split = [a for a in range(3) if r_pos[a] != r_neg[a]]
    for signs in itertools.product((1.0, -1.0), repeat=len(split)):
        rho = r_pos.copy()
        g_rows, h_rows, c_rows = [], [], []
        for a, sign in zip(split, signs):
            rho[a] = r_pos[a] if sign > 0 else r_neg[a]
            row = np.zeros(3)
            row[a] = -sign  # sign * e_a >= 0
            g_rows.append(row)
            h_rows.append(np.zeros(3))
            c_rows.append(0.0)
        b_mat = p_inv * rho
        for b in range(3):  # B e <= w + 1/2 and -B e <= 1/2 - w
            unit = np.eye(3)[b]
            g_rows += [b_mat[b], -b_mat[b]]
            h_rows += [unit, -unit]
            c_rows += [0.5, 0.5]
        g, h, c = np.array(g_rows), np.array(h_rows), np.array(c_rows)
        for size in (1, 2, 3):  # all active sets of this size at once
            todo = np.flatnonzero(~inside)
            if todo.size == 0:
                break
            active = np.array(list(itertools.combinations(range(len(g)), size)))
            n_act = g[active]  # (sets, size, 3)
            gram = n_act @ n_act.transpose(0, 2, 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                independent = np.linalg.cond(gram) <= 1e12  # else the optimum has a smaller active set
            active, n_act, gram = active[independent], n_act[independent], gram[independent]
            proj = n_act.transpose(0, 2, 1) @ np.linalg.inv(gram)  # minimum-norm solution of n_act e = rhs
            wt = w[:, todo]
            e = (proj @ h[active]) @ wt + proj @ c[active][..., None]  # (sets, 3, points)
            ok = np.einsum("sip,sip->sp", e, e) <= 1.0 + _TOL
            ok &= np.all(g @ e <= (h @ wt + c[:, None]) + _TOL, axis=1)
            inside[todo[ok.any(axis=0)]] = True
    return inside.reshape(axes[0].shape)


# -- dilation ----------------------------------------------------------------------------------------


def _bounding_box(arr: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(lo, hi) numpy indices of the set voxels (``lo <= index < hi``), or None when there are none."""
    arr = np.ascontiguousarray(arr)
    nk, nj, ni = arr.shape
    ks = np.flatnonzero(arr.reshape(nk, -1).any(axis=1))
    if ks.size == 0:
        return None
    slab = arr[ks[0] : ks[-1] + 1]
    js = np.flatnonzero(slab.reshape(-1, ni).any(axis=1).reshape(-1, nj).any(axis=0))
    is_ = np.flatnonzero(slab[:, js[0] : js[-1] + 1].any(axis=(0, 1)))
    return np.array([ks[0], js[0], is_[0]]), np.array([ks[-1], js[-1], is_[-1]]) + 1


def _dilate(src: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Binary dilation of ``src`` by footprint ``fp``; the output is larger by the footprint radius on
    every side (output index ``p + c + w`` for source index p, offset w, footprint centre c)."""
    n = src.shape
    out = np.zeros(tuple(a + b - 1 for a, b in zip(n, fp.shape)), dtype=bool)
    # runs along the axis that leaves the fewest rows
    ax = min(range(3), key=lambda a: int(np.count_nonzero(fp.any(axis=a))))
    others = [a for a in range(3) if a != ax]
    runs: Dict[int, np.ndarray] = {1: src}

    def run(length: int) -> np.ndarray:
        """``src`` dilated along ``ax`` by offsets 0 .. length-1 (doubling)."""
        if length not in runs:
            half = (length + 1) // 2
            part = run(half)
            shape = list(n)
            shape[ax] = n[ax] + length - 1
            t = np.zeros(shape, dtype=bool)
            t[_along(ax, 0, n[ax] + half - 1)] = part
            t[_along(ax, length - half, n[ax] + length - 1)] |= part
            runs[length] = t
        return runs[length]

    fp_rows = np.moveaxis(fp, ax, -1)  # (other0, other1, ax)
    for f0, f1 in zip(*np.nonzero(fp_rows.any(axis=-1))):
        idx = np.flatnonzero(fp_rows[f0, f1])
        cuts = np.flatnonzero(np.diff(idx) > 1)
        for start, stop in zip(np.r_[idx[0], idx[cuts + 1]], np.r_[idx[cuts], idx[-1]]):
            length = int(stop - start + 1)
            sl = [slice(None)] * 3
            sl[others[0]] = slice(f0, f0 + n[others[0]])
            sl[others[1]] = slice(f1, f1 + n[others[1]])
            sl[ax] = slice(start, start + n[ax] + length - 1)
            out[tuple(sl)] |= run(length)
    return out


def _along(axis: int, start: int, stop: int) -> Tuple[slice, ...]:
    sl = [slice(None)] * 3
    sl[axis] = slice(start, stop)
    return tuple(sl)


def _grown(src: np.ndarray, fp: np.ndarray):
    """Dilate the set voxels of ``src`` (cropped to their bounding box) by ``fp``.

    Returns (result, lo) with ``result`` covering grid indices ``lo .. lo + result.shape`` (may extend
    beyond the grid), or (None, None) when ``src`` is empty.
    """
    box = _bounding_box(src)
    if box is None:
        return None, None
    lo, hi = box
    crop = src[tuple(slice(a, b) for a, b in zip(lo, hi))]
    return _dilate(crop, fp), lo - np.array(fp.shape) // 2


# -- public operations -------------------------------------------------------------------------------


def _expand_array(src: np.ndarray, geometry: ImageGeometry, margins: Margins, name: str) -> np.ndarray:
    fp = footprint(geometry, margins)
    out = np.zeros(src.shape, dtype=bool)
    grown, lo = _grown(src, fp)
    if grown is None:
        return out
    hi = lo + np.array(grown.shape)
    glo = np.maximum(lo, 0)
    ghi = np.minimum(hi, np.array(src.shape))
    kept = grown[tuple(slice(a - p, b - p) for a, b, p in zip(glo, ghi, lo))]
    out[tuple(slice(a, b) for a, b in zip(glo, ghi))] = kept
    # Warn only where the margin is cut off at a grid edge the structure itself does not reach: a structure
    # that runs off the grid (the cord at the ends of the scan) is cut by the scan, not by us.
    lost = []
    box_lo = lo + np.array(fp.shape) // 2
    box_hi = hi - np.array(fp.shape) // 2
    for axis in range(3):
        n = src.shape[axis]
        if lo[axis] < 0 and box_lo[axis] > 0 and grown[_along(axis, 0, -lo[axis])].any():
            lost.append(_edge_direction(geometry, axis, -1))
        if hi[axis] > n and box_hi[axis] < n and grown[_along(axis, n - lo[axis], grown.shape[axis])].any():
            lost.append(_edge_direction(geometry, axis, +1))
    if lost:
        warnings.warn(
            f"{name or 'Expansion'}: the margin reaches beyond the image grid towards {', '.join(lost)} "
            f"({geometry.describe()}); the result is clipped there. Pad the image or segmentation geometry to "
            "keep it whole.",
            GeometryWarning,
            stacklevel=3,
        )
    return out


def _edge_direction(geometry: ImageGeometry, axis: int, sign: int) -> str:
    """Patient direction (R, L, A, P, S or I) nearest to moving along numpy ``axis`` by ``sign``."""
    v = sign * geometry.direction_matrix[:, 2 - axis]
    a = int(np.argmax(np.abs(v)))
    return ("LR", "PA", "IS")[a][int(v[a] > 0)]


def expand(mask: Mask, margins: Margins, name: str = "") -> Mask:
    """Exact expansion of ``mask`` by ``margins`` (see the module docstring)."""
    if margins.is_zero:
        return Mask(mask.array, mask.geometry, name or mask.name)
    return Mask(_expand_array(mask.array, mask.geometry, margins, name or mask.name), mask.geometry, name or mask.name)


def shrink(mask: Mask, margins: Margins, name: str = "") -> Mask:
    """Exact shrink: voxels whose centre is farther than the margin from the outside region (the region
    beyond the grid counts as outside)."""
    name = name or mask.name
    src = mask.array
    if margins.is_zero:
        return Mask(src, mask.geometry, name)
    out = np.zeros(src.shape, dtype=bool)
    box = _bounding_box(src)
    if box is None:
        return Mask(out, mask.geometry, name)
    fp = footprint(mask.geometry, _mirror(margins))
    reach = np.array(fp.shape) // 2
    lo, hi = box
    # The outside voxels that can reach the bounding box, including virtual ones beyond the grid.
    plo, phi = lo - reach, hi + reach
    glo, ghi = np.maximum(plo, 0), np.minimum(phi, np.array(src.shape))
    on_grid = tuple(slice(a - p, b - p) for a, b, p in zip(glo, ghi, plo))
    outside = np.ones(tuple(phi - plo), dtype=bool)
    outside[on_grid] = ~src[tuple(slice(a, b) for a, b in zip(glo, ghi))]
    # Dilation output index q + c + w for outside index q: the box starts at (lo - plo) + c = 2 * reach.
    box_out = tuple(slice(2 * r, 2 * r + (b - a)) for r, a, b in zip(reach, lo, hi))
    reached = _dilate(outside, fp)[box_out]
    box_sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    out[box_sl] = src[box_sl] & ~reached
    if np.any(plo < 0) or np.any(phi > np.array(src.shape)):
        # Did the region beyond the grid remove voxels that the outside on the grid does not reach?
        outside_on_grid = np.zeros_like(outside)
        outside_on_grid[on_grid] = outside[on_grid]
        by_edge = reached & ~_dilate(outside_on_grid, fp)[box_out] & src[box_sl]
        if by_edge.any():
            warnings.warn(
                f"{name or 'Shrink'}: the structure lies within the margin of the image grid edge "
                f"({mask.geometry.describe()}); the region beyond the grid counts as outside, so "
                f"{int(np.count_nonzero(by_edge))} voxels near the edge were removed.",
                GeometryWarning,
                stacklevel=2,
            )
    return Mask(out, mask.geometry, name)


def _mirror(m: Margins) -> Margins:
    # Shrinking by S on the superior side means the outside grows from above downwards: swap sides.
    return Margins(m.L, m.R, m.P, m.A, m.I, m.S)
