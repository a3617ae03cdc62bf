"""Independent truths for the DVH tests (written apart from the engine; no engine code is used here).

* ``VoxelisedTruth``: the exact DVH of a binary labelmap (each voxel a box of tissue) in a linear dose
  field, from the dose distribution inside one box, P(sum_m a_m U_m >= t): closed forms for one and two
  non-zero half-widths (uniform, trapezoid) and a numerical convolution with the third uniform otherwise.
* ``SlabTruth``: the exact DVH of a stack of planar polygons under the slab convention (each polygon an
  extruded slab) in a linear field along a plane axis or along the normal (Green's theorem for the part
  of a polygon above a line).
* ``ExtendedSolidTruth``: the ideal solid between its end contour planes, with the end sections extruded
  half a slice beyond them (the Nelms half-slice convention), by Gauss-Legendre quadrature over the
  slab axis of closed-form section areas.
* the Nelms 2015 solids (24 mm across, centred at the origin) as section functions and polygon stacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

import numpy as np
from scipy import optimize

# -- dose distribution inside one box in a linear field -------------------------------------------------


def _tail_1d(t, a):
    """P(a U >= t), U uniform on [-1, 1]."""
    return np.clip((a - t) / (2 * a), 0.0, 1.0)


def _tail_2d(t, a1, a2):
    """P(a1 U1 + a2 U2 >= t) for a1 >= a2 > 0: the trapezoid density, integrated in closed form."""
    t = np.asarray(t, dtype=float)
    s = a1 + a2
    d = a1 - a2
    area = 4 * a1 * a2  # the (y1, y2) rectangle
    # volume of {a1 u1 + a2 u2 >= t} in the rectangle [-a1, a1] x [-a2, a2] of the scaled variables
    out = np.empty_like(t)
    hi = t >= d
    lo = t <= -d
    mid = ~hi & ~lo
    out[hi] = np.clip(s - t[hi], 0, None) ** 2 / 2 / area
    out[lo] = 1 - np.clip(t[lo] + s, 0, None) ** 2 / 2 / area
    out[mid] = (d - t[mid]) * 2 * a2 / area + (2 * a2) ** 2 / 2 / area
    return np.clip(out, 0.0, 1.0)


@dataclass
class BoxTail:
    """G(t) = P(sum_m a_m U_m >= t) for half-widths ``a`` (Gy), U_m independent uniform on [-1, 1]."""

    a: Tuple[float, float, float]

    def __post_init__(self):
        a = sorted((abs(float(x)) for x in self.a), reverse=True)
        self.a = tuple(a)
        tiny = 1e-12 * max(a[0], 1e-300)
        self.rank = sum(x > tiny for x in a)
        if self.rank == 3:
            # G = (1 / 2 a3) * integral of G2 over [t - a3, t + a3]: tabulate the antiderivative of G2
            half = a[0] + a[1] + a[2]
            self._y = np.linspace(-half - a[2], half + a[2], 400001)
            g2 = _tail_2d(self._y, a[0], a[1])
            step = self._y[1] - self._y[0]
            self._h = np.concatenate([[0.0], np.cumsum(0.5 * (g2[1:] + g2[:-1]) * step)])

    def __call__(self, t):
        t = np.asarray(t, dtype=float)
        a1, a2, a3 = self.a
        if self.rank == 0:
            return (t <= 0).astype(float)
        if self.rank == 1:
            return _tail_1d(t, a1)
        if self.rank == 2:
            return _tail_2d(t, a1, a2)
        lo = np.interp(t - a3, self._y, self._h, left=0.0, right=self._h[-1])
        hi = np.interp(t + a3, self._y, self._h, left=0.0, right=self._h[-1])
        # beyond the table G2 is 1 on the left (counted by the tail value) and 0 on the right
        left = np.clip(self._y[0] - (t - a3), 0, None)
        return np.clip((hi - lo + np.minimum(left, 2 * a3)) / (2 * a3), 0.0, 1.0)

    @property
    def half_range(self) -> float:
        return float(sum(self.a))


# -- a generic cumulative DVH with metrics --------------------------------------------------------------


class CurveTruth:
    """Metrics of a cumulative DVH given as V(D) in cc (vectorised), on [d_min, d_max]."""

    def __init__(self, volume_at: Callable, d_min: float, d_max: float, volume_cc: float, mean: float):
        self.volume_at, self.min, self.max = volume_at, float(d_min), float(d_max)
        self.volume_cc, self.mean = float(volume_cc), float(mean)

    def dose_at_volume_cc(self, cc: float) -> float:
        if cc <= 0:
            return self.max
        if cc >= self.volume_cc:
            return self.min
        f = lambda d: float(self.volume_at(np.array([d]))[0]) - cc  # noqa: E731
        return float(optimize.brentq(f, self.min, self.max, xtol=1e-11, rtol=1e-15))

    def metric(self, name: str) -> float:
        if name == "Dmean":
            return self.mean
        if name == "Dmax":
            return self.max
        if name == "Dmin":
            return self.min
        if name == "Volume":
            return self.volume_cc
        if name.endswith("cc"):
            return self.dose_at_volume_cc(float(name[1:-2]))
        if name.endswith("%") and name.startswith("D"):
            return self.dose_at_volume_cc(self.volume_cc * float(name[1:-1]) / 100.0)
        raise ValueError(name)


class VoxelisedTruth(CurveTruth):
    """Exact DVH of voxel boxes in the field D(x) = d0 + g.(x - x0).

    ``centres`` (N, 3) RAS mm, ``axes`` (3, 3) rows = RAS unit vectors of the voxel edges, ``spacing`` the
    edge lengths (mm); every voxel has the same box, so the same in-box distribution.
    """

    def __init__(self, centres, axes, spacing, gradient, d0, x0):
        g = np.asarray(gradient, dtype=float)
        self.d = d0 + (np.asarray(centres, dtype=float) - np.asarray(x0, dtype=float)) @ g
        self.tail = BoxTail(tuple(abs(float(np.dot(g, ax))) * s / 2 for ax, s in zip(np.asarray(axes), spacing)))
        self.vol = float(np.prod(spacing)) / 1000.0
        h = self.tail.half_range
        super().__init__(self._volume_at, self.d.min() - h, self.d.max() + h, self.vol * len(self.d), self.d.mean())

    def _volume_at(self, levels):
        return np.array([self.vol * float(np.sum(self.tail(lev - self.d))) for lev in np.atleast_1d(levels)])


# -- polygons -------------------------------------------------------------------------------------------


def polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def area_above(pts: np.ndarray, levels) -> np.ndarray:
    """Area of a simple polygon's part with y >= each level, by Green's theorem: the area is the
    contour integral of x dy, and the cut along y = level adds nothing to it (dy = 0 there)."""
    levels = np.atleast_1d(np.asarray(levels, dtype=float))[:, None]
    x0, y0 = pts[:, 0], pts[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    ya, yb = np.maximum(y0, levels), np.maximum(y1, levels)  # the directed part of each edge above
    dy = y1 - y0
    with np.errstate(divide="ignore", invalid="ignore"):
        x_mid = np.where(dy != 0, x0 + (0.5 * (ya + yb) - y0) * (x1 - x0) / np.where(dy != 0, dy, 1.0), 0.0)
    return np.abs(np.sum((yb - ya) * x_mid, axis=1))


class SlabTruth(CurveTruth):
    """Exact DVH of single-ring planes (``planes``: list of (z, (N, 2) polygon in (x, y), z_lo, z_hi)) in
    the field d0 + g * coordinate, the coordinate being x or y (``axis`` 0 or 1) or the slab axis z (2)."""

    def __init__(self, planes, axis: int, d0: float, g: float = 1.0):
        self.planes, self.axis, self.d0, self.g = planes, axis, d0, g
        vol = sum(polygon_area(p) * (hi - lo) for _, p, lo, hi in planes) / 1000.0
        if axis == 2:
            cmin = min(lo for _, _, lo, _ in planes)
            cmax = max(hi for _, _, _, hi in planes)
            mean = sum(polygon_area(p) * (hi - lo) * (d0 + g * (lo + hi) / 2) for _, p, lo, hi in planes) / 1000 / vol
        else:
            cmin = min(p[:, axis].min() for _, p, _, _ in planes)
            cmax = max(p[:, axis].max() for _, p, _, _ in planes)
            mean = sum(_centroid(p)[axis] * polygon_area(p) * (hi - lo) for _, p, lo, hi in planes) / 1000 / vol
            mean = d0 + g * mean
        super().__init__(self._volume_at, d0 + g * cmin, d0 + g * cmax, vol, mean)

    def _volume_at(self, levels):
        c = (np.atleast_1d(np.asarray(levels, dtype=float)) - self.d0) / self.g
        total = np.zeros(len(c))
        for _, p, lo, hi in self.planes:
            if self.axis == 2:
                total += polygon_area(p) * np.clip(hi - np.maximum(lo, c), 0.0, None)
            else:
                flipped = p if self.axis == 1 else p[:, ::-1]  # x >= c: swap the axes (area is unsigned)
                total += area_above(flipped, c) * (hi - lo)
        return total / 1000.0


def _centroid(pts: np.ndarray) -> np.ndarray:
    x, y = pts[:, 0], pts[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    a = cross.sum() / 2
    return np.array([((x + xn) * cross).sum() / (6 * a), ((y + yn) * cross).sum() / (6 * a)])


# -- the Nelms solids -----------------------------------------------------------------------------------

R = 12.0  # mm: every solid is 24 mm across


def _disc_area_above(rho, y0):
    """Area of a disc of radius rho (centred at y = 0) with y >= y0."""
    rho = np.asarray(rho, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.clip(np.where(rho > 0, y0 / np.where(rho > 0, rho, 1.0), np.sign(y0 + 1e-300)), -1, 1)
    return rho * rho * (np.arccos(c) - c * np.sqrt(1 - c * c))


def _rtcone_area_above(z, y0):
    """Section at height z of the cone with axis along y, apex at y = -12, base radius 12 at y = +12:
    {x^2 + z^2 <= rho(y)^2}, rho = (y + 12)/2; area with y >= y0."""
    z = np.abs(np.asarray(z, dtype=float))
    t_b = R
    t_a = np.clip(np.maximum((np.asarray(y0, dtype=float) + R) / 2, z), None, t_b)

    def prim(t):
        s = np.sqrt(np.maximum(t * t - z * z, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            log = np.where(z > 0, np.log(np.where(t + s > 0, t + s, 1.0)), 0.0)
        return 2.0 * (t * s - z * z * log)

    return np.where(z < R, prim(t_b) - prim(t_a), 0.0)


@dataclass(frozen=True)
class NelmsShape:
    """A Nelms solid: its extent along z (the slab axis) and its section areas (AP: the area with y >= y0)."""

    name: str
    z_range: Tuple[float, float]
    area_above: Callable  # (z, y0) -> area (mm2) of the section at z with y >= y0
    polygon: Callable  # z -> (N, 2) polygon of the section at z, or None when it has no area
    y_range: Callable  # z -> (ymin, ymax) of the section at z

    def area(self, z):
        return self.area_above(z, -1e9)


def _circle(rho, n=180):
    t = (np.arange(n) + 0.5) * 2 * np.pi / n
    # radius so that the polygon's area equals the disc's (isolates the engine from polygon error)
    r = rho * np.sqrt(2 * np.pi / (n * np.sin(2 * np.pi / n)))
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _rtcone_polygon(z, n=180):
    z = abs(z)
    if z >= R:
        return None
    # boundary y(x) from rho(y) = sqrt(x^2 + z^2), y = 2 rho - 12, for |x| <= sqrt(144 - z^2), base at y = 12
    xm = np.sqrt(R * R - z * z)
    x = xm * np.cos(np.linspace(np.pi, 0, n))  # dense near the ends
    y = 2 * np.sqrt(x * x + z * z) - R
    return np.stack([x, y], axis=1)


def nelms_shapes() -> dict:
    """The six solids of the suite, each 24 mm across and centred at the origin."""
    sphere_rho = lambda z: np.sqrt(np.maximum(R * R - np.asarray(z, float) ** 2, 0.0))  # noqa: E731
    cone_up = lambda z: np.clip((R - np.asarray(z, float)) / 2, 0, None)  # noqa: E731
    cone_down = lambda z: np.clip((R + np.asarray(z, float)) / 2, 0, None)  # noqa: E731
    cyl = lambda z: np.where(np.abs(np.asarray(z, float)) <= R, R, 0.0)  # noqa: E731

    def disc_shape(name, rho, z_range):
        return NelmsShape(
            name,
            z_range,
            lambda z, y0: _disc_area_above(rho(z), y0),
            lambda z: _circle(float(rho(z))) if rho(z) > 1e-9 else None,
            lambda z: (-float(rho(z)), float(rho(z))),
        )

    def rect_above(z, y0):
        half = np.sqrt(np.maximum(R * R - np.asarray(z, float) ** 2, 0.0))
        return 2 * half * np.clip(R - np.maximum(y0, -R), 0, 2 * R)

    def rect_polygon(z):
        half = float(np.sqrt(max(R * R - z * z, 0.0)))
        return np.array([[-half, -R], [half, -R], [half, R], [-half, R]]) if half > 1e-9 else None

    return {
        "sphere": disc_shape("sphere", sphere_rho, (-R, R)),
        "cylinder_SI": disc_shape("cylinder_SI", cyl, (-R, R)),
        "cylinder_AP": NelmsShape("cylinder_AP", (-R, R), rect_above, rect_polygon, lambda z: (-R, R)),
        "cone_SI_apex_sup": disc_shape("cone_SI_apex_sup", cone_up, (-R, R)),
        "cone_SI_apex_inf": disc_shape("cone_SI_apex_inf", cone_down, (-R, R)),
        "rotated_cone_AP": NelmsShape(
            "rotated_cone_AP",
            (-R, R),
            _rtcone_area_above,
            _rtcone_polygon,
            lambda z: (2 * abs(z) - R, R),
        ),
    }


def contour_planes(shape: NelmsShape, spacing: float, offset: float = 0.0) -> List[Tuple[float, np.ndarray]]:
    """Contours at z = offset + k * spacing inside the solid (sections with area only)."""
    zlo, zhi = shape.z_range
    ks = np.arange(np.floor((zlo - offset) / spacing) - 1, np.ceil((zhi - offset) / spacing) + 2)
    out = []
    for k in ks:
        z = float(offset + k * spacing)
        if zlo - 1e-9 <= z <= zhi + 1e-9:
            poly = shape.polygon(z)
            if poly is not None and polygon_area(poly) > 1e-6:
                out.append((z, poly))
    return out


def slab_planes(planes, spacing: float, end_caps: str = "half-slice"):
    """(z, polygon, z_lo, z_hi) under the slab convention, for regularly spaced planes."""
    cap = spacing / 2 if end_caps == "half-slice" else 0.0
    out = []
    for i, (z, p) in enumerate(planes):
        lo = z - (spacing / 2 if i > 0 else cap)
        hi = z + (spacing / 2 if i < len(planes) - 1 else cap)
        out.append((z, p, lo, hi))
    return out


def _gauss_nodes(breaks: Sequence[float], seg: float = 0.25, order: int = 24):
    x, w = np.polynomial.legendre.leggauss(order)
    nodes, weights = [], []
    for a, b in zip(breaks[:-1], breaks[1:]):
        if b <= a:
            continue
        m = max(1, int(np.ceil((b - a) / seg)))
        edges = np.linspace(a, b, m + 1)
        for lo, hi in zip(edges[:-1], edges[1:]):
            nodes.append(0.5 * (hi - lo) * x + 0.5 * (hi + lo))
            weights.append(0.5 * (hi - lo) * w)
    return np.concatenate(nodes), np.concatenate(weights)


class ExtendedSolidTruth(CurveTruth):
    """The ideal solid between its end contour planes z_first and z_last, with the end sections extruded
    by ``cap`` beyond them; dose d0 + z (axis "SI") or d0 + y (axis "AP"), 1 Gy/mm."""

    def __init__(self, shape: NelmsShape, z_first: float, z_last: float, cap: float, axis: str, d0: float = 16.0):
        self.shape, self.axis, self.d0 = shape, axis, d0
        self.z_first, self.z_last = z_first, z_last
        zlo, zhi = z_first - cap, z_last + cap
        breaks = sorted({zlo, z_first, 0.0, z_last, zhi} | {z for z in (-R, R) if zlo < z < zhi})
        self.breaks = [b for b in breaks if zlo <= b <= zhi]
        self.z, self.w = _gauss_nodes(self.breaks)
        self.zc = np.clip(self.z, z_first, z_last)
        self.area = shape.area(self.zc)
        vol = float(np.sum(self.area * self.w)) / 1000.0
        if axis == "SI":
            mean = d0 + float(np.sum(self.area * self.w * self.z)) / 1000.0 / vol
            dmin, dmax = d0 + zlo, d0 + zhi
        else:
            ys = np.array([shape.y_range(z) for z in self.zc])
            dmin, dmax = d0 + ys[:, 0].min(), d0 + ys[:, 1].max()
            mean = None
        super().__init__(self._volume_at, dmin, dmax, vol, 0.0 if mean is None else mean)
        if mean is None:  # mean = Dmin + integral of V/V0 over the dose range
            x, w = _gauss_nodes([dmin, dmax], seg=1.0)
            self.mean = dmin + float(np.sum(self._volume_at(x) * w)) / vol

    def _volume_at(self, levels):
        levels = np.atleast_1d(np.asarray(levels, dtype=float))
        c = levels - self.d0
        if self.axis == "SI":  # integrate the section areas from z = c up: the integrand is smooth there
            out = []
            for lev in c:
                start = max(lev, self.breaks[0])
                if start >= self.breaks[-1]:
                    out.append(0.0)
                    continue
                z, w = _gauss_nodes([start] + [b for b in self.breaks if b > start])
                zc = np.clip(z, self.z_first, self.z_last)
                out.append(float(np.sum(self.shape.area(zc) * w)) / 1000.0)
            return np.array(out)
        above = self.shape.area_above(self.zc[None, :], c[:, None])
        return (above * self.w[None, :]).sum(axis=1) / 1000.0
