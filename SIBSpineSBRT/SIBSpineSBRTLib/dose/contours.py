"""Planar-contour structures (DICOM RTSTRUCT closed planar contours) for the DVH engine.

Input
-----
A contour is a closed polygon given as (N, 3) RAS points in mm; the last point is joined to the first
(repeating the first point is harmless). DICOM stores LPS: flip x and y of the ContourData first. All
contours of a structure must lie in planes perpendicular to one normal: axial for an ordinary RTSTRUCT,
but any direction is accepted (the normal is found from the polygons, or given).

What the contours mean
----------------------
* In-plane: the contours of one plane combine by the even-odd rule: a point is inside when an odd number
  of them surround it, so a ring drawn inside another is a hole (as dicompyler reads RTSTRUCTs). Rings
  passed as ``holes`` are subtracted from that region (explicit inner rings). Rings with fewer than three
  points or no area (markers) are ignored.
* Through-plane (the slab convention): each contour plane stands for a slab of tissue. Between two
  neighbouring planes the slabs meet half way, so with a regular contour spacing s every plane is a slab
  s thick, half above and half below its plane. At an end of the structure (no neighbour within 1.5 s;
  a missing plane inside a structure is therefore a gap) the end cap decides:

  - ``"half-slice"`` (default): the end slab also reaches s/2 beyond the end contour. The solid is
    extended half a slice beyond its end contours. This is the convention of the Nelms 2015 analytical
    DVH data, of dicompyler-core and (approximately, with smooth caps) of SlicerRT's default end capping.
  - ``"none"``: the structure stops at its end contour planes. The volume is smaller by exactly the end
    slabs: (area of the first plane + area of the last plane) * s / 2.

  s is ``slice_spacing_mm`` when given, otherwise the median distance between neighbouring planes (a
  structure drawn on one plane needs ``slice_spacing_mm``).

How it is sampled (fractional occupancy, exact areas)
-----------------------------------------------------
Each plane is cut into bands between the levels of its polygon vertices along the in-plane v axis, and
each band into rows no taller than the step (finer where the region tapers to a tip). Inside a band no
polygon edge bends, so the region of a row is a set of trapezoids, found by a scanline at the row's
mid-line with the slopes of its edges (no point-in-polygon raster). All planes are scanned at once (each
moved along v so that they follow one another). Each trapezoid is cut at the multiples of the step along
u; for each piece the area and the centroid are integrated exactly. A piece becomes a box of that area
(row height x effective length) centred on its centroid; the DVH engine (``dvh.dvh_from_boxes``) spreads
each box's volume over its linear dose range. Plane areas, and so volumes, are exact for polygons that do
not cross themselves; what is rounded is the shape of a piece (a box instead of a trapezoid), a
second-order effect.

A piece's box can reach a little beyond the piece (a rectangle for a trapezoid), so its linear dose range can
reach past any dose the structure receives: the DVH is bounded by the exact extremes of the trilinear dose
over the contours (``ContourStructure.dose_extremes``; ``dvh`` module docstring, "Bounds").

By default (``ContourStructure.dvh`` without a step) the whole pieces of a trapezoid, the columns between
the inner ends of its two edges, are one box (a rectangle: exact), and each slab is one layer; the DVH
engine then cuts the boxes on the dose grid's planes where the dose bends, and refines those of the
hottest and coldest 0.03 cc (``dvh`` module docstring, "How a structure is sampled"). With an explicit
step every piece is a box and each slab is cut into layers no thicker than the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry.grid import GeometryError
from .dvh import DVH, Refinement, dvh_from_boxes
from .grid import DoseError, DoseGrid

#: End-cap conventions (see the module docstring).
END_CAPS = ("half-slice", "none")


class ContourError(GeometryError):
    """Contours that cannot form a structure (not planar, planes not parallel, no area...)."""


@dataclass(frozen=True, eq=False)
class ContourPlane:
    """The rings of one contour plane, in the structure's in-plane (u, v) coordinates (mm)."""

    position_mm: float  # along the normal
    rings: Tuple[np.ndarray, ...]  # (N, 2) arrays of (u, v)
    holes: Tuple[bool, ...]  # True: an explicit inner ring, subtracted
    below_mm: float  # slab extent towards -normal
    above_mm: float  # slab extent towards +normal

    @property
    def thickness_mm(self) -> float:
        return self.below_mm + self.above_mm


def _newell_normal(points: np.ndarray) -> np.ndarray:
    """Newell's vector of a closed polygon: normal times twice the area."""
    p = points - points.mean(axis=0)
    q = np.roll(p, -1, axis=0)
    return np.array(
        [
            np.sum((p[:, 1] - q[:, 1]) * (p[:, 2] + q[:, 2])),
            np.sum((p[:, 2] - q[:, 2]) * (p[:, 0] + q[:, 0])),
            np.sum((p[:, 0] - q[:, 0]) * (p[:, 1] + q[:, 1])),
        ]
    )


def _plane_basis(normal: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """In-plane unit axes (u, v), right-handed with the normal; u is R (x) for an axial plane."""
    axis = np.zeros(3)
    axis[int(np.argmin(np.abs(normal)))] = 1.0
    u = axis - normal * float(axis @ normal)
    u /= np.linalg.norm(u)
    return u, np.cross(normal, u)


@dataclass(frozen=True, eq=False)
class ContourStructure:
    """A structure made of closed planar contours; see the module docstring for its conventions."""

    name: str
    planes: Tuple[ContourPlane, ...]
    normal: Tuple[float, float, float]
    slice_spacing_mm: float
    end_caps: str = "half-slice"

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_polygons(
        cls,
        name: str,
        polygons: Sequence,
        holes: Sequence = (),
        normal: Optional[Sequence[float]] = None,
        slice_spacing_mm: Optional[float] = None,
        end_caps: str = "half-slice",
        plane_tolerance_mm: float = 0.01,
    ) -> ContourStructure:
        """Build from closed polygons ((N, 3) RAS mm each); ``holes`` are explicit inner rings.

        Polygons whose plane positions differ by at most ``plane_tolerance_mm`` share a plane.
        """
        if end_caps not in END_CAPS:
            raise ContourError(f"End caps must be one of {END_CAPS}; got '{end_caps}'.")
        rings: List[Tuple[np.ndarray, bool]] = []
        for role, group in ((False, polygons), (True, holes)):
            for poly in group:
                pts = np.asarray(poly, dtype=np.float64).reshape(-1, 3)
                if len(pts) >= 3:
                    rings.append((pts, role))
        if not rings:
            raise ContourError(f"Structure {name} has no contour with three or more points.")
        # the common normal
        if normal is None:
            vectors = [_newell_normal(p) for p, _ in rings]
            sizes = [np.linalg.norm(v) for v in vectors]
            ref = vectors[int(np.argmax(sizes))]
            if np.linalg.norm(ref) <= 1e-12:
                raise ContourError(f"Structure {name}: every contour has zero area; it has no volume.")
            n = ref / np.linalg.norm(ref)
            for v, size in zip(vectors, sizes):
                if size > 1e-6 * max(sizes) and abs(abs(v @ n) / size - 1.0) > 1e-4:
                    raise ContourError(
                        f"Structure {name}: its contours do not lie in parallel planes (angle "
                        f"{np.degrees(np.arccos(min(1.0, abs(v @ n) / size))):.2f} deg); planar contours must share "
                        "one plane direction."
                    )
        else:
            n = np.asarray(normal, dtype=np.float64)
            if n.shape != (3,) or np.linalg.norm(n) == 0:
                raise ContourError(f"Structure {name}: the contour normal must be a non-zero 3-vector.")
            n = n / np.linalg.norm(n)
        n = n * np.sign(n[int(np.argmax(np.abs(n)))])  # e.g. +S for axial planes
        u_axis, v_axis = _plane_basis(n)

        # group rings by plane position
        entries = []
        for pts, role in rings:
            w = pts @ n
            if np.ptp(w) > 0.5:
                raise ContourError(
                    f"Structure {name}: a contour is not planar (it spans {np.ptp(w):.2f} mm across its plane)."
                )
            entries.append((float(w.mean()), np.stack([pts @ u_axis, pts @ v_axis], axis=1), role))
        entries.sort(key=lambda e: e[0])
        groups: List[List[Tuple[float, np.ndarray, bool]]] = []
        for e in entries:
            if groups and e[0] - groups[-1][-1][0] <= plane_tolerance_mm:
                groups[-1].append(e)
            else:
                groups.append([e])
        positions = np.array([np.mean([e[0] for e in g]) for g in groups])
        gaps = np.diff(positions)
        if slice_spacing_mm is not None:
            spacing = float(slice_spacing_mm)
            if not spacing > 0:
                raise ContourError(f"Structure {name}: slice spacing must be > 0 mm; got {slice_spacing_mm}.")
        elif len(gaps):
            spacing = float(np.median(gaps))
        else:
            raise ContourError(
                f"Structure {name} is drawn on a single plane: give slice_spacing_mm (e.g. the CT slice "
                "thickness) so that its slab thickness is known."
            )
        cap = 0.5 * spacing if end_caps == "half-slice" else 0.0
        planes = []
        for p, g in enumerate(groups):
            below = 0.5 * gaps[p - 1] if p > 0 and gaps[p - 1] <= 1.5 * spacing else cap
            above = 0.5 * gaps[p] if p < len(gaps) and gaps[p] <= 1.5 * spacing else cap
            planes.append(
                ContourPlane(float(positions[p]), tuple(e[1] for e in g), tuple(e[2] for e in g), below, above)
            )
        return cls(name, tuple(planes), tuple(float(x) for x in n), spacing, end_caps)

    def with_end_caps(self, end_caps: str) -> ContourStructure:
        """The same contours with another end-cap convention."""
        if end_caps not in END_CAPS:
            raise ContourError(f"End caps must be one of {END_CAPS}; got '{end_caps}'.")
        rings, holes = [], []
        for plane in self.planes:
            for ring, hole in zip(plane.rings, plane.holes):
                (holes if hole else rings).append(self._to_ras(ring, plane.position_mm))
        return ContourStructure.from_polygons(self.name, rings, holes, self.normal, self.slice_spacing_mm, end_caps)

    # -- geometry -----------------------------------------------------------------------------------
    @property
    def basis(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, normal) unit RAS vectors of the contour planes."""
        n = np.asarray(self.normal)
        u, v = _plane_basis(n)
        return u, v, n

    def _to_ras(self, uv: np.ndarray, w: float) -> np.ndarray:
        u, v, n = self.basis
        return uv[:, :1] * u + uv[:, 1:2] * v + w * n

    def plane_area_mm2(self, index: int) -> float:
        """Exact area (mm2) of the region of plane ``index`` (even-odd rings minus holes)."""
        return float(self.plane_areas_mm2()[index])

    def plane_areas_mm2(self) -> np.ndarray:
        """Exact area (mm2) of the region of every plane."""
        if "_areas" not in self.__dict__:
            areas = np.zeros(len(self.planes))
            scan = _stacked_rows(self.planes, np.inf)
            if scan is not None:
                plane_of_row, _, v, h, row, ua, ub = scan[:7]
                areas += np.bincount(plane_of_row[row], weights=(ub - ua) * h[row], minlength=len(self.planes))
            areas.setflags(write=False)
            object.__setattr__(self, "_areas", areas)
        return self.__dict__["_areas"]

    @property
    def volume_cc(self) -> float:
        """Volume (cc) under the slab convention: sum of plane area x slab thickness."""
        thickness = np.array([pl.thickness_mm for pl in self.planes])
        return float(self.plane_areas_mm2() @ thickness) / 1000.0

    def default_step_mm(
        self,
        dose: Optional[DoseGrid] = None,
        max_step_mm: float = 1.0,
        hot_volume_cc: float = 0.03,
        min_hot_samples: int = 200,
        max_samples: int = 2_000_000,
    ) -> float:
        """Box size (mm) for sampling: at most ``max_step_mm`` and half the finest dose-grid spacing; small
        enough that the hottest ``hot_volume_cc`` holds ``min_hot_samples`` boxes; large enough that the
        whole structure needs at most about ``max_samples`` boxes."""
        step = float(max_step_mm)
        if dose is not None:
            step = min(step, 0.5 * min(dose.geometry.spacing))
        step = min(step, (hot_volume_cc * 1000.0 / min_hot_samples) ** (1.0 / 3.0))
        volume_mm3 = max(self.volume_cc * 1000.0, 1e-9)
        return max(step, (volume_mm3 / max_samples) ** (1.0 / 3.0))

    # -- DVH ----------------------------------------------------------------------------------------
    def tail_step_mm(self, hot_volume_cc: float = 0.03, min_hot_samples: int = 200, max_samples: int = 2_000_000):
        """Box size (mm) in the tails on the adaptive path: the hottest ``hot_volume_cc`` then holds
        ``min_hot_samples`` boxes (bounded below as ``default_step_mm``)."""
        step = (hot_volume_cc * 1000.0 / min_hot_samples) ** (1.0 / 3.0)
        return max(step, (max(self.volume_cc * 1000.0, 1e-9) / max_samples) ** (1.0 / 3.0))

    def boxes(self, dose: DoseGrid, step_mm: float, adaptive: bool = False) -> Iterator[tuple]:
        """Box chunks (see ``dvh.BoxChunk``) in ``dose``'s index coordinates (one chunk for all planes).

        Each piece of a plane (module docstring) is a box; with ``adaptive`` the whole pieces of a row that
        follow each other are one box and each slab is one layer (``dvh_from_boxes`` then cuts them where
        the dose bends), otherwise slabs are cut into layers no thicker than the step."""
        u_axis, v_axis, n = self.basis
        to_index = np.diag(1.0 / np.asarray(dose.geometry.spacing)) @ dose.geometry.direction_matrix.T
        edges = np.stack([to_index @ u_axis, to_index @ v_axis, to_index @ n])  # index steps per mm
        scan = _stacked_rows(self.planes, step_mm)
        if scan is None:
            return
        plane_of_row, shift = scan[:2]
        uc, vc, length, height, row = _pieces(*scan[2:], step_mm, merge=adaptive)
        plane = plane_of_row[row]
        vc = vc - shift[plane]
        thickness = np.array([pl.thickness_mm for pl in self.planes])
        base = np.array([pl.position_mm - pl.below_mm for pl in self.planes])
        layers = np.ones(len(self.planes), dtype=np.int64)
        if not adaptive:
            layers = np.maximum(1, np.ceil(thickness / step_mm - 1e-9).astype(np.int64))
        keep = thickness[plane] > 0
        uc, vc, length, height, plane = uc[keep], vc[keep], length[keep], height[keep], plane[keep]
        # every piece once per layer of its slab
        count = layers[plane]
        piece = np.repeat(np.arange(len(plane)), count)
        layer = np.arange(len(piece)) - np.repeat(np.cumsum(count) - count, count)
        plane = plane[piece]
        t = thickness[plane] / layers[plane]
        w = base[plane] + (layer + 0.5) * t
        origin = np.asarray(dose.geometry.origin)
        ras = uc[piece, None] * u_axis + vc[piece, None] * v_axis + w[:, None] * n - origin
        centres = np.einsum("nc,rc->nr", ras, to_index)
        lengths = np.stack([length[piece], height[piece], t], axis=1)
        volumes = length[piece] * height[piece] * t / 1000.0  # length x height is the exact area of the piece
        yield centres, edges, lengths, volumes

    def dvh(self, dose: DoseGrid, step_mm: Optional[float] = None, stacklevel: int = 2) -> DVH:
        """DVH of this structure in ``dose`` (metric definitions: ``dvh`` module docstring).

        With ``step_mm`` the pieces and layers are boxes no larger than it; by default they follow the
        shape at ``default_step_mm`` and are cut where the dose bends, finer in the tails (``dvh`` module
        docstring, "How a structure is sampled"). Either way the DVH is bounded by ``dose_extremes``."""
        volume = self.volume_cc
        if volume <= 0:
            raise DoseError(
                f"Structure {self.name} has no volume (its contours enclose no area, or a single plane has no "
                "end caps)."
            )
        if step_mm is not None:
            step = float(step_mm)
            sampling = f"planar contours, {step:.3g} mm boxes, {self.end_caps} end caps"
            boxes = self.boxes(dose, step)
            bounds = self.dose_extremes(dose)
            return dvh_from_boxes(
                self.name, dose, boxes, volume, sampling=sampling, stacklevel=stacklevel + 1, bounds=bounds
            )
        step = self.default_step_mm(dose)
        tail = self.tail_step_mm()
        sampling = f"planar contours, {step:.3g} mm pieces cut where the dose bends, {self.end_caps} end caps"
        return dvh_from_boxes(
            self.name,
            dose,
            self.boxes(dose, step, adaptive=True),
            volume,
            sampling=sampling,
            stacklevel=stacklevel + 1,
            refinement=Refinement((tail, tail, tail)),
            bounds=self.dose_extremes(dose),
        )

    def dose_extremes(self, dose: DoseGrid) -> Optional[Tuple[float, float]]:
        """(lowest, highest) trilinear dose over the part of the structure inside ``dose``'s grid, exact (to
        rounding); None when no part lies inside, or when the contour planes are not planes of the dose grid
        (oblique to it: then only the grid's least and largest values bound the DVH).

        Along the normal the dose is piecewise linear, bending only on the planes of dose-voxel centres (and
        constant across the grid's outer half voxel), so over a slab its extremes lie on the slab's end planes
        or on such a plane inside it. In each of those planes the dose is bilinear in each cell between the
        node lines (the outer faces included), and a bilinear function has no interior maximum or minimum:
        the extremes over the region lie at the cell corners inside it or on its contour edges, where between
        the cell lines an edge crosses the dose is a quadratic in the edge parameter, whose ends and vertex
        are evaluated."""
        u_axis, v_axis, n = self.basis
        geometry = dose.geometry
        to_index = np.diag(1.0 / np.asarray(geometry.spacing)) @ geometry.direction_matrix.T
        en, eu, ev = to_index @ n, to_index @ u_axis, to_index @ v_axis
        c = int(np.argmax(np.abs(en)))
        ab = [axis for axis in range(3) if axis != c]
        in_plane = max(float(np.abs(eu).max()), float(np.abs(ev).max()))
        if np.abs(en[ab]).max() > 1e-9 * abs(en[c]) or max(abs(eu[c]), abs(ev[c])) > 1e-9 * in_plane:
            return None
        shift = to_index @ np.asarray(geometry.origin, dtype=np.float64)
        size = np.array(geometry.shape[::-1])  # voxels along i, j, k
        lines = [np.unique(np.concatenate([[-0.5], np.arange(m), [m - 0.5]])) for m in size]
        to_ab = np.stack([eu[ab], ev[ab]])  # (u, v) mm -> in-plane index (a, b)
        points, levels, pieces = [], [], []
        for plane in self.planes:
            if plane.thickness_mm <= 0:
                continue
            ends = sorted(
                float(w * en[c] - shift[c])
                for w in (plane.position_mm - plane.below_mm, plane.position_mm + plane.above_mm)
            )
            k0, k1 = max(ends[0], -0.5), min(ends[1], size[c] - 0.5)
            if k0 > k1:
                continue
            at = np.unique(np.concatenate([[k0, k1], lines[c][(lines[c] > k0) & (lines[c] < k1)]]))
            offset = plane.position_mm * en[ab] - shift[ab]
            rings = [np.asarray(r, dtype=np.float64) @ to_ab + offset for r in plane.rings]
            nodes = _nodes_inside(rings, plane.holes, lines[ab[0]], lines[ab[1]])
            starts, mids, stops = _edge_pieces(rings, plane.holes, lines[ab[0]], lines[ab[1]], size[ab] - 0.5)
            for level in at:
                points.append(nodes)
                levels.append(np.full(len(nodes), level))
                pieces.append((starts, mids, stops, level))
        if not points:
            return None

        def evaluate(ab_points: np.ndarray, level) -> np.ndarray:
            ijk = np.empty((len(ab_points), 3))
            ijk[:, ab] = ab_points
            ijk[:, c] = level
            return dose.interpolate_index(ijk)[0]

        values = [evaluate(np.concatenate(points), np.concatenate(levels))]
        for starts, mids, stops, level in pieces:
            if len(starts):
                fa, fm, fb = (evaluate(q, level) for q in (starts, mids, stops))
                qa, qb = 2.0 * (fa + fb) - 4.0 * fm, 4.0 * fm - 3.0 * fa - fb  # f(s) = qa s^2 + qb s + fa
                curved = qa != 0
                s = np.where(curved, -qb / np.where(curved, 2.0 * qa, 1.0), 0.0)  # the vertex, where curved
                s = np.where((s > 0) & (s < 1), s, 0.0)
                vertex = fa + s * (qb + s * qa)
                values.extend([fa, fb, vertex])
        values = np.concatenate(values)
        if not len(values):
            return None
        return float(values.min()), float(values.max())


#: Bands holding a tapering trapezoid (its end widths differ by more than _TIP_RATIO of its mid width) are
#: cut _TIP_REFINEMENT times finer: a box centred on the piece's centroid then stays within h/48 of the
#: piece's v range.
_TIP_RATIO = 0.25
_TIP_REFINEMENT = 8


def _stacked_rows(planes: Sequence[ContourPlane], step_mm: float):
    """Scanline rows of all planes at once, or None when none has area: (plane of each row, the v shift of
    each plane, then the results of ``_rows``). Plane p is moved by p x (span + 1 mm) along v, so that the
    planes lie one after the other and one scan serves them all (no row covers two planes)."""
    rings, holes, plane_of_ring = [], [], []
    for p, plane in enumerate(planes):
        for ring, hole in zip(plane.rings, plane.holes):
            rings.append(ring)
            holes.append(hole)
            plane_of_ring.append(p)
    if not rings:
        return None
    # vertex levels snapped to 1e-7 mm, so that no row mid-line falls on a vertex through rounding
    rings = [np.stack([r[:, 0], np.round(r[:, 1], 7)], axis=1) for r in rings]
    low = min(float(r[:, 1].min()) for r in rings)
    span = max(float(r[:, 1].max()) for r in rings) - low + 1.0
    shift = np.arange(len(planes)) * span
    rings = [r + np.array([0.0, shift[p]]) for r, p in zip(rings, plane_of_ring)]
    levels = np.unique(np.concatenate([r[:, 1] for r in rings]))
    if len(levels) < 2:
        return None
    plane_of_level = np.floor((levels - low + 0.5) / span).astype(np.int64)  # half the margin: no rounding doubt
    rows = _rows(rings, holes, levels, step_mm, gap=plane_of_level[1:] != plane_of_level[:-1])
    if rows is None:
        return None
    return (plane_of_level[np.searchsorted(levels, rows[0], side="right") - 1], shift) + rows


def _rows(rings, holes, levels, step_mm: float, gap=None):
    """Scanline rows between the vertex ``levels`` of ``rings`` ((N, 2) u, v each), or None when they
    enclose no area: (row mid-lines v, row heights h, and per occupied interval its row index, its u limits
    on the mid-line and the slopes du/dv of its left and right edges). Rows never hold a vertex level inside,
    so each interval is a trapezoid. Bands holding a tapering trapezoid (a tip of the region) are cut finer,
    so that a box stands in for a tip only over a short height. Bands marked in ``gap`` get one row."""
    band = np.diff(levels)
    if not np.isfinite(step_mm):
        rows = _scan(rings, holes, levels, np.ones(len(band), dtype=np.int64))[1:]
        return None if rows[0] is None else rows
    sub = np.maximum(1, np.ceil(band / step_mm - 1e-9).astype(np.int64))
    if gap is not None:
        sub[gap] = 1
    band_of_row, *rows = _scan(rings, holes, levels, sub)
    if rows[0] is None:
        return None
    v, h, row, ua, ub, sl, sr = rows
    tip = np.abs(sr - sl) * h[row] > _TIP_RATIO * (ub - ua)
    if tip.any():
        sub[np.unique(band_of_row[row[tip]])] *= _TIP_REFINEMENT
        rows = _scan(rings, holes, levels, sub)[1:]
    return tuple(rows)


def _scan(rings, holes, levels, sub):
    """(band of each row, then the results of ``_rows``) for ``sub`` rows per band between ``levels``."""
    band = np.diff(levels)
    band_of_row = np.repeat(np.arange(len(band)), sub)
    part = np.arange(len(band_of_row)) - np.repeat(np.cumsum(sub) - sub, sub)
    h = band[band_of_row] / sub[band_of_row]
    v = levels[band_of_row] + (part + 0.5) * h
    none = (band_of_row, None, None, None, None, None, None, None)
    # edges and their crossings with the row mid-lines (no vertex lies on a mid-line)
    u0 = np.concatenate([r[:, 0] for r in rings])
    v0 = np.concatenate([r[:, 1] for r in rings])
    u1 = np.concatenate([np.roll(r[:, 0], -1) for r in rings])
    v1 = np.concatenate([np.roll(r[:, 1], -1) for r in rings])
    hole = np.concatenate([np.full(len(r), is_hole) for r, is_hole in zip(rings, holes)])
    vmin, vmax = np.minimum(v0, v1), np.maximum(v0, v1)
    first = np.searchsorted(v, vmin, side="right")
    last = np.searchsorted(v, vmax, side="left")
    count = np.maximum(last - first, 0)
    edge = np.repeat(np.arange(len(u0)), count)
    if len(edge) == 0:
        return none
    row = first[edge] + np.arange(len(edge)) - np.repeat(np.cumsum(count) - count, count)
    slope = (u1[edge] - u0[edge]) / (v1[edge] - v0[edge])  # du/dv, constant inside a band
    u = u0[edge] + (v[row] - v0[edge]) * slope
    order = np.lexsort((u, row))
    row, u, slope, is_hole = row[order], u[order], slope[order], hole[edge][order]
    # even-odd parity of the rings, minus the holes' region, just after each crossing (counted per row)
    start = np.searchsorted(row, row, side="left")
    n_outer = np.cumsum(~is_hole)
    n_hole = np.cumsum(is_hole)
    outer_odd = ((n_outer - np.concatenate([[0], n_outer])[start]) % 2).astype(bool)
    hole_odd = ((n_hole - np.concatenate([[0], n_hole])[start]) % 2).astype(bool)
    inside = outer_odd[:-1] & ~hole_odd[:-1] & (row[:-1] == row[1:]) & (u[1:] > u[:-1])
    idx = np.nonzero(inside)[0]
    if len(idx) == 0:
        return none
    return band_of_row, v, h, row[idx], u[idx], u[idx + 1], slope[idx], slope[idx + 1]


def _pieces(v, h, row, ua, ub, slope_left, slope_right, step_mm: float, merge: bool = False):
    """Cut each row trapezoid at the multiples of ``step_mm`` along u. Returns, per piece, its exact
    centroid (u, v), its area divided by the row height (an effective length along u), the row height and
    the row. With ``merge``, the whole pieces of a trapezoid (full rectangles: the columns between the
    inner ends of its two edges) are one piece.

    Inside a piece the occupied width is piecewise linear in v, with bends where an edge crosses a column
    line: area and first moments are integrated exactly between those bends."""
    half = 0.5 * h[row]
    left = np.minimum(ua - slope_left * half, ua + slope_left * half)
    right = np.maximum(ub - slope_right * half, ub + slope_right * half)
    k0 = np.floor(left / step_mm).astype(np.int64)
    k_end = np.maximum(np.ceil(right / step_mm).astype(np.int64), k0 + 1)
    if merge:  # whole columns [f0, f1), between the edges' inner ends
        f0 = np.clip(np.ceil((ua + np.abs(slope_left) * half) / step_mm).astype(np.int64), k0, k_end)
        f1 = np.clip(np.floor((ub - np.abs(slope_right) * half) / step_mm).astype(np.int64), k0, k_end)
        f1 = np.maximum(f1, f0)
    else:
        f0 = f1 = k_end
    # the other columns, [k0, f0) and [f1, k_end), integrated exactly
    n_left = f0 - k0
    count = n_left + (k_end - f1)
    owner = np.repeat(np.arange(len(ua)), count)
    j = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    k = np.where(j < n_left[owner], k0[owner] + j, f1[owner] + j - n_left[owner])
    c0, c1 = k * step_mm, (k + 1) * step_mm
    a, b, sl, sr, hh = ua[owner], ub[owner], slope_left[owner], slope_right[owner], half[owner]
    # bends (in t = v - row mid-line): where an edge meets a column line
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = np.stack([(c0 - a) / sl, (c1 - a) / sl, (c0 - b) / sr, (c1 - b) / sr], axis=1)
    cand = np.where(np.isfinite(cand), cand, -hh[:, None])
    t = np.sort(np.concatenate([-hh[:, None], np.clip(cand, -hh[:, None], hh[:, None]), hh[:, None]], axis=1), axis=1)

    def lo_hi(tt):
        lo = np.maximum(a[:, None] + sl[:, None] * tt, c0[:, None])
        hi = np.minimum(b[:, None] + sr[:, None] * tt, c1[:, None])
        return lo, hi

    lo, hi = lo_hi(t)
    width = np.maximum(hi - lo, 0.0)
    mid_t = 0.5 * (t[:, 1:] + t[:, :-1])
    mlo, mhi = lo_hi(mid_t)
    mid_width = np.maximum(mhi - mlo, 0.0)
    dt = np.diff(t, axis=1)
    f_0, f_1 = width[:, :-1], width[:, 1:]
    area = np.sum(0.5 * (f_0 + f_1) * dt, axis=1)
    moment_t = np.sum(dt * (t[:, :-1] * (2 * f_0 + f_1) + t[:, 1:] * (f_0 + 2 * f_1)) / 6.0, axis=1)
    # u moment: integral of width x mean u, quadratic between bends (Simpson is exact)
    g = width * 0.5 * (lo + hi)
    gm = mid_width * 0.5 * (mlo + mhi)
    moment_u = np.sum(dt / 6.0 * (g[:, :-1] + 4 * gm + g[:, 1:]), axis=1)
    keep = area > 1e-12 * step_mm * step_mm
    area, moment_t, moment_u, owner = area[keep], moment_t[keep], moment_u[keep], owner[keep]
    uc, t_c = moment_u / area, moment_t / area
    runs = np.nonzero(f1 > f0)[0]
    if len(runs):  # the whole columns: a rectangle centred on the mid-line
        run_area = (f1 - f0)[runs] * step_mm * h[row[runs]]
        area = np.concatenate([area, run_area])
        uc = np.concatenate([uc, 0.5 * (f0 + f1)[runs] * step_mm])
        t_c = np.concatenate([t_c, np.zeros(len(runs))])
        owner = np.concatenate([owner, runs])
    r = row[owner]
    height = h[r]
    return uc, v[r] + t_c, area / height, height, r


# -- exact dose extremes over the contours (``ContourStructure.dose_extremes``) ------------------------------


def _scanline_inside(rings, holes, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Boolean [row, column]: is the point (columns[c], rows[r]) inside the region of ``rings`` ((N, 2) each;
    even-odd, minus the even-odd region of the rings marked in ``holes``)? Half-open at vertices."""
    parity = [np.zeros((len(rows), len(columns)), dtype=np.int64) for _ in range(2)]
    for ring, hole in zip(rings, holes):
        p = np.asarray(ring, dtype=np.float64)
        q = np.roll(p, -1, axis=0)
        lo, hi = np.minimum(p[:, 1], q[:, 1]), np.maximum(p[:, 1], q[:, 1])
        first = np.searchsorted(rows, lo, side="left")  # rows with lo <= y < hi
        count = np.maximum(np.searchsorted(rows, hi, side="left") - first, 0)
        edge = np.repeat(np.arange(len(p)), count)
        row = first[edge] + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        t = (rows[row] - p[edge, 1]) / (q[edge, 1] - p[edge, 1])
        x = p[edge, 0] + t * (q[edge, 0] - p[edge, 0])
        col = np.searchsorted(columns, x, side="left")  # a crossing at x flips every column >= x
        flips = np.zeros((len(rows), len(columns) + 1), dtype=np.int64)
        np.add.at(flips, (row, col), 1)
        parity[int(bool(hole))] += np.cumsum(flips[:, :-1], axis=1)
    return (parity[0] % 2 == 1) & (parity[1] % 2 == 0)


def _nodes_inside(rings, holes, columns: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(n, 2) points of the lattice ``columns`` x ``rows`` (sorted positions along a and b) inside the
    region of ``rings`` (``_scanline_inside``), limited to the rings' bounds."""
    allp = np.concatenate(rings)
    cols = columns[(columns >= allp[:, 0].min()) & (columns <= allp[:, 0].max())]
    rws = rows[(rows >= allp[:, 1].min()) & (rows <= allp[:, 1].max())]
    if not len(cols) or not len(rws):
        return np.zeros((0, 2))
    r, k = np.nonzero(_scanline_inside(rings, holes, rws, cols))
    return np.stack([cols[k], rws[r]], axis=1)


def _edge_pieces(rings, holes, columns: np.ndarray, rows: np.ndarray, upper: np.ndarray):
    """The rings' edges cut where they cross a line of ``columns`` (a) or ``rows`` (b): (starts, midpoints,
    ends) of the pieces inside the box [-0.5, upper] (each piece lies wholly inside or outside it, as its
    faces are lines), and, when there are holes, on the region's boundary only."""
    p = np.concatenate([np.asarray(r, dtype=np.float64) for r in rings])
    q = np.concatenate([np.roll(np.asarray(r, dtype=np.float64), -1, axis=0) for r in rings])
    is_hole = np.concatenate([np.full(len(r), bool(h)) for r, h in zip(rings, holes)])
    edges, ts = [np.arange(len(p))] * 2, [np.zeros(len(p)), np.ones(len(p))]
    for axis, lines in ((0, columns), (1, rows)):
        a, b = p[:, axis], q[:, axis]
        first = np.searchsorted(lines, np.minimum(a, b), side="right")
        count = np.maximum(np.searchsorted(lines, np.maximum(a, b), side="left") - first, 0)
        edge = np.repeat(np.arange(len(p)), count)
        line = lines[first[edge] + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)]
        edges.append(edge)
        ts.append((line - a[edge]) / (b[edge] - a[edge]))
    edge, t = np.concatenate(edges), np.concatenate(ts)
    order = np.lexsort((t, edge))
    edge, t = edge[order], t[order]
    same = (edge[1:] == edge[:-1]) & (t[1:] > t[:-1])
    e, t0, t1 = edge[1:][same], t[:-1][same], t[1:][same]
    d = q[e] - p[e]
    starts, mids, stops = (p[e] + tt[:, None] * d for tt in (t0, 0.5 * (t0 + t1), t1))
    keep = np.all((mids >= -0.5) & (mids <= upper), axis=1)
    if is_hole.any():  # an outer edge inside a hole, or a hole's edge outside the outer rings, bounds nothing
        outer = [r for r, h in zip(rings, holes) if not h]
        inner = [r for r, h in zip(rings, holes) if h]
        keep &= np.where(is_hole[e], _points_inside(outer, mids), ~_points_inside(inner, mids))
    return starts[keep], mids[keep], stops[keep]


def _points_inside(rings, points: np.ndarray) -> np.ndarray:
    """Even-odd: is each (a, b) point inside ``rings``? (A ray towards +a crosses an odd number of edges.)"""
    inside = np.zeros(len(points), dtype=bool)
    for ring in rings:
        p = np.asarray(ring, dtype=np.float64)
        q = np.roll(p, -1, axis=0)
        for s in range(0, len(points), 4096):
            x, y = points[s : s + 4096, :1], points[s : s + 4096, 1:]
            spans = (np.minimum(p[:, 1], q[:, 1]) <= y) & (y < np.maximum(p[:, 1], q[:, 1]))
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = p[:, 0] + (y - p[:, 1]) * (q[:, 0] - p[:, 0]) / (q[:, 1] - p[:, 1])
            inside[s : s + 4096] ^= (np.count_nonzero(spans & (cross > x), axis=1) % 2).astype(bool)
    return inside
